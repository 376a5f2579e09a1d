"""The production mode for real: PostgreSQL, Redis, a Celery worker process and the Daphne ASGI
server, each a separate process started here (Debian's redis-server and postgresql; .ci/run
installs them). Enrolment and recognition go through the HTTP API; the worker does the work."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[3]
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path("/usr/lib/postgresql").is_dir() else None

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the 'postgres' user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    yield from production_stack(tmp_path_factory.mktemp("stack"))


def production_stack(base: Path, *, extra_env: dict[str, str] | None = None,
                     worker_options: tuple[str, ...] = ("--pool", "solo")) -> Iterator[dict[str, object]]:
    """Start the stack in ``base`` and yield what tests need (the body of the ``stack`` fixture;
    other suites start their own with other settings or a worker pool)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    if PG_BIN is None or not (PG_BIN / "postgres").exists():
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs Debian's postgresql)")
    os.chmod(base, 0o777)
    processes: dict[str, subprocess.Popen] = {}
    cleanup: list[Path] = []
    logs = base / "logs"
    logs.mkdir()

    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}

    def start(name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        commands[name] = (command, env)
        log = open(logs / f"{name}.log", "ab")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        processes[name] = process
        return process

    try:
        redis_port = _free_port()
        start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no"])
        _wait_port(redis_port, 20, processes["redis"])

        # pytest's temporary folders are private to root; PostgreSQL's user needs its own.
        pg_home = Path(tempfile.mkdtemp(prefix="rollcall-pg-"))
        cleanup.append(pg_home)
        pg_data, pg_port = pg_home / "data", _free_port()
        if os.geteuid() == 0:
            shutil.chown(pg_home, "postgres", "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(pg_data), "-U", "rollcall", "--auth=trust",
                                     "-E", "UTF8"]), check=True, capture_output=True)
        start("postgres", _as_postgres([str(PG_BIN / "postgres"), "-D", str(pg_data), "-p", str(pg_port),
                                        "-k", str(pg_home), "-c", "listen_addresses=127.0.0.1"]))
        _wait_port(pg_port, 30, processes["postgres"])
        subprocess.run(_as_postgres([str(PG_BIN.parent / "bin" / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port),
                                     "-U", "rollcall", "rollcall"]), check=True, capture_output=True)

        media = base / "media"
        media.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))},
            "DATABASE_URL": f"postgres://rollcall@127.0.0.1:{pg_port}/rollcall",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "MEDIA_ROOT": str(media),
            "ROLLCALL_VAR_DIR": str(base / "var"),
            "ROLLCALL_TASK_WAIT_SECONDS": "8",
            "ROLLCALL_HTTPS": "0",  # plain HTTP on loopback
            "DJANGO_SUPERUSER_PASSWORD": "integration-pw-1",
            **(extra_env or {}),
        }
        python = sys.executable
        manage = [python, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com"],
                       env=env, check=True, cwd=ROOT, capture_output=True)
        token = subprocess.run([*manage, "drf_create_token", "admin"], env=env, check=True, cwd=ROOT,
                               capture_output=True, text=True).stdout.split()[2]
        start("worker", [python, "-m", "celery", "-A", "portal", "worker", *worker_options, "-l", "info",
                         "-n", "integration@%h"], env)
        web_port = _free_port()
        start("web", [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port), "portal.asgi:application"], env)
        _wait_port(web_port, 60, processes["web"])
        deadline = time.monotonic() + 120
        while b"ready" not in (logs / "worker.log").read_bytes():
            if time.monotonic() > deadline or processes["worker"].poll() is not None:
                raise RuntimeError("the celery worker did not start: " + (logs / "worker.log").read_text()[-2000:])
            time.sleep(0.5)
        def restart(name: str) -> None:
            before = (logs / f"{name}.log").read_bytes().count(b"ready")
            start(name, *commands[name])
            if name == "redis":
                _wait_port(redis_port, 20, processes["redis"])
                return
            deadline = time.monotonic() + 120
            while (logs / f"{name}.log").read_bytes().count(b"ready") <= before:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not come back")
                time.sleep(0.5)

        yield {"url": f"http://127.0.0.1:{web_port}", "token": token, "restart": restart, "env": env, "media": media, "logs": logs,
               "processes": processes, "manage": manage}
    finally:
        for process in reversed(list(processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _api(stack: dict[str, object]) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack['token']}"
    return session


def test_enrol_and_recognise_through_worker_redis_and_postgres(stack: dict[str, object], people: dict[str, list[Path]]) -> None:
    api, url = _api(stack), stack["url"]
    employee = api.post(f"{url}/api/v1/employees", json={"code": "P-1", "full_name": "Paula Prod"}, timeout=30)
    assert employee.status_code == 201, employee.text
    employee_id = employee.json()["id"]
    with open(people["joe_biden"][0], "rb") as photo:
        enrolled = api.post(f"{url}/api/v1/faces", data={"employee": employee_id}, files={"image": photo}, timeout=60)
    assert enrolled.status_code == 201, enrolled.text
    with open(people["joe_biden"][1], "rb") as photo:
        recognised = api.post(f"{url}/api/v1/recognize", files={"image": photo}, timeout=60).json()["faces"]
    assert recognised[0]["known"] and recognised[0]["employee_id"] == employee_id
    with open(people["alex_lacamoire"][0], "rb") as photo:
        stranger = api.post(f"{url}/api/v1/recognize", files={"image": photo}, timeout=60).json()["faces"]
    assert not stranger[0]["known"]
    with open(stack["media"].parent / "not-a-photo.txt", "w") as handle:
        handle.write("text")
    with open(stack["media"].parent / "not-a-photo.txt", "rb") as photo:
        bad = api.post(f"{url}/api/v1/faces", data={"employee": employee_id}, files={"image": photo}, timeout=60)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_image"

    worker_log = (stack["logs"] / "worker.log").read_text()
    assert "recognition.face_enroll" in worker_log and "recognition.face_recognize" in worker_log  # the worker did it
    # the rows are in PostgreSQL
    count = subprocess.run(
        [*stack["manage"], "shell", "-c",
         "from django.db import connection; from recognition.models import FaceImage; "
         "print(connection.vendor, FaceImage.objects.count())"],
        env=stack["env"], capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout.strip().splitlines()[-1].split()
    assert count == ["postgresql", "1"]
    staged = list((stack["media"] / "staging").glob("*")) if (stack["media"] / "staging").exists() else []
    assert staged == []


def test_device_events_from_the_worker_reach_the_monitor_through_redis(stack: dict[str, object],
                                                                      people: dict[str, list[Path]]) -> None:
    """The check-in runs on the Celery worker; its monitor event crosses Redis (the channel layer)
    to a manager's websocket on the Daphne process. The same idempotency key over REST and then
    the device websocket is answered once."""
    import base64
    import json

    import websocket

    url = stack["url"]
    token = subprocess.run([*stack["manage"], "create_device", "Prod door", "--token-only"], env=stack["env"],
                           capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    session = requests.Session()
    session.get(f"{url}/accounts/login/", timeout=30)
    session.post(f"{url}/accounts/login/", data={"username": "admin", "password": "integration-pw-1",
                                                 "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                 headers={"Referer": f"{url}/accounts/login/"}, timeout=30)
    ws_base = url.replace("http://", "ws://")
    monitor = websocket.create_connection(f"{ws_base}/ws/monitor/", origin=url, timeout=60,
                                          cookie="; ".join(f"{c.name}={c.value}" for c in session.cookies))
    photo = people["joe_biden"][1].read_bytes()
    first = requests.post(f"{url}/api/v1/check-ins", headers={"Authorization": f"Device {token}"}, timeout=120,
                          data={"key": "prod-event-0001"}, files=[("frames", ("f.jpg", photo, "image/jpeg"))] * 3)
    assert first.status_code == 200, first.text
    # Nothing was recorded, so the door is told no name; the manager's monitor below still is.
    assert first.json()["outcome"] == "liveness_failed" and first.json()["employee"] is None
    events = []
    while not any(e.get("kind") == "recognition" for e in events):
        events.append(json.loads(monitor.recv()))
    seen = next(e for e in events if e.get("kind") == "recognition")
    assert seen["employee"] == "Paula Prod" and seen["device"] == "Prod door" and seen["outcome"] == "liveness_failed"
    device = websocket.create_connection(f"{ws_base}/ws/device/", origin=url, timeout=120,
                                         header=[f"Authorization: Device {token}"])
    assert json.loads(device.recv())["type"] == "hello"
    device.send(json.dumps({"type": "check_in", "key": "prod-event-0001", "fps": 12,
                            "frames": [base64.b64encode(photo).decode()] * 3}))
    reply = json.loads(device.recv())
    assert reply["type"] == "decision" and reply["answer"] == first.json()
    device.close()
    monitor.close()
    assert "attendance.kiosk_check_in" in (stack["logs"] / "worker.log").read_text()
    rows = subprocess.run(
        [*stack["manage"], "shell", "-c",
         "from attendance.models import RecognitionLog; print(RecognitionLog.objects.filter(key='prod-event-0001').count())"],
        env=stack["env"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()[-1]
    assert rows == "1"


def test_no_worker_and_dead_broker_give_503_and_leave_nothing(stack: dict[str, object], people: dict[str, list[Path]]) -> None:
    api, url, processes = _api(stack), stack["url"], stack["processes"]
    os.killpg(processes["worker"].pid, signal.SIGTERM)
    processes["worker"].wait(timeout=30)
    with open(people["rose_leslie"][0], "rb") as photo:
        started = time.monotonic()
        response = api.post(f"{url}/api/v1/recognize", files={"image": photo}, timeout=60)
    assert response.status_code == 503 and response.json()["code"] == "recognition_unavailable"
    assert time.monotonic() - started < 30
    health = requests.get(f"{url}/health/", timeout=30)  # says so too (a ping to a worker goes unanswered)
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert health.json()["checks"]["recognition"]["workers"].startswith("no worker answered")
    os.killpg(processes["redis"].pid, signal.SIGTERM)
    processes["redis"].wait(timeout=30)
    with open(people["rose_leslie"][0], "rb") as photo:
        response = api.post(f"{url}/api/v1/recognize", files={"image": photo}, timeout=60)
    assert response.status_code == 503 and "broker" in response.json()["detail"]
    staging = stack["media"] / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []

    # Redis and a worker come back: the same web process serves again without a restart.
    stack["restart"]("redis")
    stack["restart"]("worker")
    with open(people["joe_biden"][1], "rb") as photo:
        response = api.post(f"{url}/api/v1/recognize", files={"image": photo}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["known"]
