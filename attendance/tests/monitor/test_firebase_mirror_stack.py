"""The Firebase mirror in the production mode: PostgreSQL, Redis, Daphne, a recognition worker and
a second Celery worker on the mirror's own queue (ROLLCALL_FIREBASE_QUEUE), all real processes
(recognition.tests.integration.test_production_stack). Firebase itself is outside this machine:
the real firebase-admin SDK in the mirror worker talks to the Realtime Database stand-in of
test_firebase_mirror (FIREBASE_DATABASE_EMULATOR_HOST), which answers slowly or fails on cue.
Measured: a device check-in's answer time with a quick, a slow and a failing Firebase."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from attendance.tests.monitor.test_firebase_mirror import RealtimeDatabaseStandIn
from recognition.tests.integration.test_production_stack import ROOT, production_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mirrored_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, object], RealtimeDatabaseStandIn]]:
    stand_in = RealtimeDatabaseStandIn()
    env = {"ROLLCALL_FIREBASE_BACKEND": "rtdb", "ROLLCALL_FIREBASE_DATABASE_URL": "https://rollcall-stack.firebaseio.com",
           "FIREBASE_DATABASE_EMULATOR_HOST": stand_in.host, "ROLLCALL_FIREBASE_TIMEOUT_SECONDS": "20",
           "ROLLCALL_FIREBASE_RETRIES": "2", "ROLLCALL_FIREBASE_QUEUE": "firebase",
           "ROLLCALL_TASK_WAIT_SECONDS": "120"}  # a loaded 2-core machine
    try:
        for stack in production_stack(tmp_path_factory.mktemp("mirror"), extra_env=env):
            log_path = stack["logs"] / "firebase-worker.log"
            with open(log_path, "ab") as log:
                worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo",
                                           "-Q", "firebase", "-l", "info", "-n", "firebase@%h"], cwd=ROOT, env=stack["env"],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + 120
                while b"ready" not in log_path.read_bytes():
                    assert worker.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
                    time.sleep(0.5)
                stack["firebase_log"] = log_path
                yield stack, stand_in
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
    finally:
        stand_in.close()


def _wait(condition, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - started


def _records(stand_in: RealtimeDatabaseStandIn) -> set[str]:
    with stand_in.lock:
        return set(stand_in.get(["rollcall_events"]) or {})


def test_a_slow_or_failing_firebase_never_delays_a_check_in_on_the_workers(mirrored_stack, people: dict[str, list[Path]]) -> None:
    stack, stand_in = mirrored_stack
    url = stack["url"]
    api = requests.Session()
    api.headers["Authorization"] = f"Token {stack['token']}"
    employee = api.post(f"{url}/api/v1/employees", json={"code": "M-1", "full_name": "Mia Mirror", "biometric_consent_at": "2026-01-01T00:00:00Z"}, timeout=30)
    assert employee.status_code == 201, employee.text
    with open(people["joe_biden"][0], "rb") as photo:
        assert api.post(f"{url}/api/v1/faces", data={"employee": employee.json()["id"]}, files={"image": photo},
                        timeout=120).status_code == 201
    token = subprocess.run([*stack["manage"], "create_device", "Mirror door", "--token-only"], env=stack["env"],
                           capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    photo = people["joe_biden"][1].read_bytes()

    def check_in(key: str) -> float:
        started = time.perf_counter()
        answer = requests.post(f"{url}/api/v1/check-ins", headers={"Authorization": f"Device {token}"}, timeout=120,
                               data={"key": key}, files=[("frames", ("f.jpg", photo, "image/jpeg"))] * 3)
        # A still photo fails liveness: nothing is recorded, so the door is told no name (the
        # monitor and the mirror still get the whole event).
        assert answer.status_code == 200 and answer.json()["outcome"] == "liveness_failed", answer.text
        assert answer.json()["employee"] is None, answer.text
        return time.perf_counter() - started

    check_in("mirror-warm-0001")
    _wait(lambda: len(_records(stand_in)) == 1)
    baseline = check_in("mirror-base-0001")
    quick_lag = _wait(lambda: len(_records(stand_in)) == 2)

    stand_in.delay = 8.0
    slow = check_in("mirror-slow-0001")
    # The proof (timings on a shared 2-core machine are noisy): when the answer came back, the
    # mirror's write had not finished yet.
    assert len(_records(stand_in)) == 2, "the answer waited for the mirror"
    slow_lag = _wait(lambda: len(_records(stand_in)) == 3)
    stand_in.delay = 0.0

    stand_in.fail_status = 502
    puts_before = stand_in.methods().count("PUT")
    failing = check_in("mirror-fail-0001")
    # One try and two retries (ROLLCALL_FIREBASE_RETRIES=2) on the mirror worker, then it gives up.
    _wait(lambda: stand_in.methods().count("PUT") == puts_before + 3)
    _wait(lambda: b"raised unexpected" in stack["firebase_log"].read_bytes(), timeout=30)
    time.sleep(3)
    assert stand_in.methods().count("PUT") == puts_before + 3 and len(_records(stand_in)) == 3
    stand_in.fail_status = None
    received = b"Task attendance.firebase_mirror["
    assert received in stack["firebase_log"].read_bytes()
    assert received not in (stack["logs"] / "worker.log").read_bytes(), "the mirror took a recognition worker's slot"
    print(f"\nworkers: check-in answered in {baseline * 1000:.0f} ms with a quick Firebase (mirrored {quick_lag:.2f} s after), "
          f"{slow * 1000:.0f} ms with an {8.0:.0f} s Firebase (mirrored {slow_lag:.2f} s after the answer), "
          f"{failing * 1000:.0f} ms with a failing one (3 attempts, then given up)")
