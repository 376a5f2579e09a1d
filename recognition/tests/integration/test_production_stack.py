"""The production mode for real: PostgreSQL, Redis, a Celery worker process and the Daphne ASGI
server, each a separate process started here (Debian's redis-server and postgresql; .ci/run
installs them). Enrolment and recognition go through the HTTP API; the worker does the work."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from portal.testing.stack import ROOT, StackUnavailable
from portal.testing.stack import free_port as _free_port  # noqa: F401 - other suites import these from here
from portal.testing.stack import production_stack as _stack
from portal.testing.stack import wait_port as _wait_port  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    yield from production_stack(tmp_path_factory.mktemp("stack"))


def production_stack(base: Path, *, extra_env: dict[str, str] | None = None,
                     worker_options: tuple[str, ...] = ("--pool", "solo")) -> Iterator[dict[str, object]]:
    """Start the stack in ``base`` (portal.testing.stack) and yield what tests need (the body of
    the ``stack`` fixture; other suites start their own with other settings or a worker pool)."""
    try:
        with _stack(base, extra_env=extra_env, worker_options=worker_options) as started:
            yield {"url": started.url, "token": started.token, "restart": started.restart, "env": started.env,
                   "media": started.media, "logs": started.logs, "processes": started.processes,
                   "manage": started.manage}
    except StackUnavailable as exc:
        pytest.skip(str(exc))


def _api(stack: dict[str, object]) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack['token']}"
    return session


def test_enrol_and_recognise_through_worker_redis_and_postgres(stack: dict[str, object], people: dict[str, list[Path]]) -> None:
    api, url = _api(stack), stack["url"]
    employee = api.post(f"{url}/api/v1/employees", json={"code": "P-1", "full_name": "Paula Prod", "biometric_consent_at": "2026-01-01T00:00:00Z"}, timeout=30)
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


def test_a_streamed_burst_is_worked_on_by_the_worker_and_answered_once(stack: dict[str, object],
                                                                       people: dict[str, list[Path]]) -> None:
    """burst_start, frames and burst_end over the device websocket: each frame goes to the Celery
    worker as it arrives (task attendance.burst_frame, its payload through Redis), the decision
    too (attendance.burst_finish); the answer equals the REST one for the same frames, and the
    same key streamed again gets the stored answer without a second row."""
    import base64
    import json

    import websocket

    url = stack["url"]
    token = subprocess.run([*stack["manage"], "create_device", "Streaming door", "--token-only"], env=stack["env"],
                           capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    frames = [people["joe_biden"][1].read_bytes()] * 4
    worker_log = stack["logs"] / "worker.log"
    logged_before = len(worker_log.read_text())  # the log's start-up banner lists every task's name
    rest = requests.post(f"{url}/api/v1/check-ins", headers={"Authorization": f"Device {token}"}, timeout=120,
                         data={"key": "prod-rest-0001"}, files=[("frames", ("f.jpg", f, "image/jpeg")) for f in frames])
    assert rest.status_code == 200, rest.text
    device = websocket.create_connection(f"{url.replace('http://', 'ws://')}/ws/device/", origin=url, timeout=120,
                                         header=[f"Authorization: Device {token}"])
    assert json.loads(device.recv())["type"] == "hello"
    answers = []
    for _ in range(2):
        device.send(json.dumps({"type": "burst_start", "key": "prod-stream-0001", "fps": 12}))
        assert json.loads(device.recv()) == {"type": "burst_started", "key": "prod-stream-0001"}
        for index, frame in enumerate(frames):
            device.send(json.dumps({"type": "frame", "key": "prod-stream-0001", "index": index,
                                    "jpeg": base64.b64encode(frame).decode()}))
        device.send(json.dumps({"type": "burst_end", "key": "prod-stream-0001", "frames": len(frames)}))
        answers.append(json.loads(device.recv()))
    device.close()
    assert [a["type"] for a in answers] == ["decision", "decision"], answers
    streamed = answers[0]["answer"]
    assert answers[1]["answer"] == streamed
    assert {k: v for k, v in streamed.items() if k not in ("at", "log_id")} == {
        k: v for k, v in rest.json().items() if k not in ("at", "log_id")}
    log = worker_log.read_text()[logged_before:]
    # The worker received each frame and the decision (Celery's "Task <name>[<id>] received").
    assert log.count("Task attendance.burst_frame[") >= len(frames) and "Task attendance.burst_finish[" in log, log[-3000:]
    rows = subprocess.run(
        [*stack["manage"], "shell", "-c",
         "from attendance.models import RecognitionLog; "
         "print([r.employee.full_name for r in RecognitionLog.objects.filter(key='prod-stream-0001')])"],
        env=stack["env"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    assert rows == "['Paula Prod']"  # one row, the person the frames show (the door itself is told no name)


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
