"""bench/load.py: its monitor-delivery accounting (pure functions), a run at its tiniest through
the real production stack (PostgreSQL, Redis, two Daphne, a Celery worker; doors over the edge
client's websocket protocol, managers' monitors), and its clean-up when interrupted."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.testing.stack import ROOT, missing

BENCH = ROOT / "bench" / "load.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module
    spec.loader.exec_module(module)
    return module


def test_recognition_accounting_finds_lost_duplicated_and_misdelivered_events() -> None:
    bench = _load_bench()
    rows = [{"id": 1, "employee_id": 10}, {"id": 2, "employee_id": 20}, {"id": 3, "employee_id": None}]
    admin = {"admin": True, "manager": True, "visible": []}
    dept = {"admin": False, "manager": True, "visible": [10, 11]}
    nobody = {"admin": False, "manager": False, "visible": [20]}  # not a manager: sees no monitor
    perfect = bench.recognition_accounting(rows, [admin, dept, nobody], [[1, 2, 3], [3, 1], []])
    assert perfect["expected"] == 5 and perfect["delivered"] == 5
    assert (perfect["lost"], perfect["duplicated"], perfect["misdelivered"]) == (0, 0, 0)

    wrong = bench.recognition_accounting(rows, [admin, dept, nobody], [[1, 3, 3], [1, 2, 3, 99], [2]])
    assert wrong["lost"] == 1 and wrong["duplicated"] == 1  # the admin missed 2 and got 3 twice
    assert wrong["misdelivered"] == 3  # 2 to the department manager, 99 (no such event), 2 to a non-manager
    assert {(p["monitor"], p["event"]) for p in wrong["problems"]} == {(0, 2), (0, 3), (1, 2), (1, 99), (2, 2)}


def test_device_accounting_wants_every_event_once_on_every_monitor() -> None:
    bench = _load_bench()
    on, off = (5, True, "t1"), (5, False, "t1")
    assert bench.device_accounting([[on, off], [off, on]], [5])["lost"] == 0
    result = bench.device_accounting([[on, off], [on, on]], [5])
    assert result["lost"] == 1 and result["duplicated"] == 1
    assert bench.device_accounting([[on], [on]], [5])["lost"] == 2  # never announced offline: lost everywhere


def _stack_or_skip() -> None:
    if (why := missing()) is not None:
        pytest.skip(why)


@pytest.mark.integration
def test_tiny_load_run_delivers_every_monitor_event_exactly_once_and_cleans_up(tmp_path: Path) -> None:
    _stack_or_skip()
    out = tmp_path / "load.json"
    # The repository's fixtures (not ../shared/data), so the run is the same on a fresh checkout.
    done = subprocess.run([sys.executable, str(BENCH), "--people", "3", "--doors", "2", "--monitors", "4",
                           "--seconds", "4", "--workers", "1", "--data", str(tmp_path / "absent"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "fixtures" in report["data"]
    run = report["runs"][0]
    assert run["workers"] == 1 and run["saturated"]["check_ins"] >= 1 and run["saturated"]["errors"] == 0
    assert run["at_80"] is not None and run["at_80"]["errors"] == 0
    assert run["saturated"]["p50_s"] > 0 and run["memory_peak_mib"]["worker"] > 100
    assert {"web", "web2", "worker"} <= set(run["memory_peak_mib"])
    assert report["bursts"]["frames"] == 24 and report["bursts"]["strangers"] >= 1

    monitors = report["monitors"]
    assert monitors["roles"] == {"admin": 1, "department": 2, "plain": 1} and monitors["dropped_sockets"] == 0
    rec = monitors["recognition"]
    assert rec["events"] == report["recognition_logs"]["done"] >= 2 and report["recognition_logs"]["pending"] == 0
    assert (rec["lost"], rec["duplicated"], rec["misdelivered"]) == (0, 0, 0), rec["problems"]
    assert rec["delivered"] == rec["expected"] > 0
    assert monitors["after_answer_p95_s"] is not None and report["heartbeat_errors"] == 0
    admin = next(m for m in monitors["per_monitor"] if m["role"] == "admin")
    assert admin["received"] == rec["events"]  # an admin sees every event
    assert all(m["received"] == m["allowed"] for m in monitors["per_monitor"])
    device = monitors["device"]
    assert device["events"] >= 4 and (device["lost"], device["duplicated"]) == (0, 0)  # 2 doors, online and offline

    for pid in report["processes"].values():  # every process stopped, the temporary folder gone
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} is still running"
    assert not Path(report["base"]).exists()


@pytest.mark.integration
def test_interrupted_load_run_stops_every_process_and_removes_its_folders(tmp_path: Path) -> None:
    _stack_or_skip()
    bench = subprocess.Popen([sys.executable, "-u", str(BENCH), "--people", "2", "--doors", "1", "--monitors", "1",
                              "--seconds", "120", "--workers", "1", "--data", str(tmp_path / "absent")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started: dict = {}
    try:
        deadline = time.monotonic() + 600
        for line in bench.stdout:  # the doors start right after the gallery line
            if line.startswith("stack up: "):
                started = json.loads(line[len("stack up: "):])
            if line.startswith("gallery: "):
                break
            assert time.monotonic() < deadline and bench.poll() is None, line
        assert started, "the benchmark never said its stack was up"
        time.sleep(5)
        assert bench.poll() is None
        bench.send_signal(signal.SIGINT)
        rest, _ = bench.communicate(timeout=300)  # a worker still loading its models stops slowly on a busy machine
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, rest[-2000:]
    assert "interrupted" in rest
    for name, pid in started["pids"].items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} ({pid}) is still running"
    for folder in [started["base"], *started["pg"]]:
        assert not Path(folder).exists(), folder
    leftovers = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and started["base"].encode() in (entry / "cmdline").read_bytes():
                leftovers.append(entry.name)
        except OSError:
            pass
    assert leftovers == [], leftovers
