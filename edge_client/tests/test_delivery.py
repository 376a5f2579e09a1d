"""Delivery that never blocks: backoff with jitter, the dead-letter table, replay, and the
dead-letter report on the heartbeat — the real sender and SQLite queue against a scripted HTTP
portal on loopback (the client's REST transport; the real portal is in test_end_to_end)."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from edge_client import config, hardware
from edge_client.client import EdgeClient
from edge_client.outbox import Outbox
from edge_client.portal import PortalClient
from edge_client.retry import RetryPolicy
from edge_client.tests.conftest import RecordingLed

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = {"outcome": "checked_in", "message": "Welcome", "employee": "Sam Selfie"}
TOO_OLD = (400, {"code": "captured_at_too_old", "detail": "captured_at is older than a device may deliver a queued check-in."})
FAULT = (500, {"code": "server_error", "detail": "The server failed to handle this request; it has been logged."})


class ScriptedPortal:
    """An HTTP server answering check-ins from a script per idempotency key (then 200), and
    recording every request and heartbeat body."""

    def __init__(self, status_for_all: int | None = None) -> None:
        self.script: Dict[str, List[Tuple[int, Dict[str, Any]]]] = {}
        self.requests: List[Tuple[str, int]] = []  # (key, status) per check-in, in arrival order
        self.heartbeats: List[Dict[str, Any]] = []
        self.status_for_all = status_for_all
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if portal.status_for_all is not None:
                    return self._answer(portal.status_for_all, {"code": "not_authenticated", "detail": "Unknown token."})
                if self.path == "/api/v1/device/heartbeat":
                    portal.heartbeats.append(json.loads(body or b"{}"))
                    return self._answer(200, {"name": "Front door"})
                key = re.search(rb'name="key"\r\n\r\n([^\r]+)', body).group(1).decode()
                planned = portal.script.get(key)
                status, answer = planned.pop(0) if planned else (200, CHECKED_IN)
                portal.requests.append((key, status))
                self._answer(status, answer)

            def _answer(self, status: int, body: Dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> List[str]:
        return [key for key, status in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _event(outbox: Outbox, key: str, captured_at: str = "2026-11-24T09:00:00+00:00") -> None:
    outbox.put(key=key, kind="check_in", captured_at=captured_at, body={"fps": 12.0, "frames": ["AA=="], "faces": []})


class Sender:
    """The client's sender thread alone (no camera), with fast retry settings."""

    def __init__(self, url: str, queue: Path, **overrides: Any) -> None:
        flags = {"portal_url": url, "token": "t" * 20, "transport": "rest", "queue_path": str(queue),
                 "heartbeat_seconds": 0.3, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2,
                 "dead_letter_tries": 3, "dead_letter_age": 0, "fresh_seconds": 0, **overrides}
        settings = config.load(None, env={}, flags=flags)
        self.outbox = Outbox(settings.queue_path)
        self.portal = PortalClient(settings.portal_url, settings.resolved_token(), settings.transport, timeout=5)
        self.led = hardware.LedController(RecordingLed(), hold=0.05)
        self.client = EdgeClient(settings, None, None, self.led, hardware.Buttons(), self.outbox, self.portal)

    def start(self) -> None:
        self.client._sender = threading.Thread(target=self.client._send_loop, daemon=True)
        self.client._sender.start()

    def wait_until(self, condition: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.stop()
        self.led.close()
        self.portal.close()
        self.outbox.close()


def test_backoff_grows_with_jitter_and_gives_up_only_past_both_bounds() -> None:
    policy = RetryPolicy(base=2.0, event_cap=300.0, max_tries=5, max_age=600.0)
    rng = random.Random(7)
    for failures, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0), (9, 300.0), (50, 300.0), (10_000, 300.0)):
        delays = [policy.event_delay(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), failures
        assert max(delays) - min(delays) > ceiling / 4, "jittered, so doors that failed together spread out"
    assert all(0.5 <= policy.portal_delay(n, rng) <= 15.0 for n in range(1, 100))
    assert not policy.give_up(4, 10_000) and not policy.give_up(50, 599) and policy.give_up(5, 600)


def test_dead_letters_move_out_of_the_queue_and_replay_puts_them_back(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "q.sqlite3"))
    for key in ("first-key", "second-key", "third-key"):
        _event(outbox, key)
    head = outbox.head()
    outbox.dead_letter(head.seq, "captured_at_too_old", "too old")
    assert outbox.head().key == "second-key" and outbox.pending() == 2
    letters = outbox.dead_letters()
    assert [(d.key, d.code, d.attempts) for d in letters] == [("first-key", "captured_at_too_old", 1)]
    # A failing event waits for its own retry; the ones behind it are due now.
    second = outbox.head()
    outbox.retry_later(second.seq, "HTTP 500", at=time.time() + 60)
    assert outbox.head().key == "third-key" and outbox.due_in() == 0
    assert outbox.head(now=time.time() + 61).key == "second-key"
    assert [d.key for d in outbox.replay([letters[0].id, 999])] == ["first-key"] and outbox.dead_letter_count() == 0
    sent = []
    while (item := outbox.head()) is not None:
        sent.append(item.key)
        outbox.delivered(item.seq, {})
    assert sent == ["third-key", "first-key"], "replayed at the end of the queue, under the same key"
    assert 59 < outbox.due_in() <= 60, "the failing one waits for its retry"
    outbox.close()


def test_an_old_queue_file_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
                         "kind TEXT NOT NULL, captured_at TEXT NOT NULL, body TEXT NOT NULL, queued_at REAL NOT NULL, "
                         "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, delivered_at REAL, answer TEXT);"
                         "INSERT INTO outbox (key, kind, captured_at, body, queued_at) VALUES "
                         "('queued-before', 'check_in', '2026-11-24T09:00:00+00:00', '{}', 0);")
    outbox = Outbox(str(path))
    assert outbox.head().key == "queued-before" and outbox.head().failures == 0 and outbox.dead_letter_count() == 0
    outbox.close()


def test_a_refused_or_failing_event_never_blocks_the_ones_behind_it(tmp_path: Path) -> None:
    portal = ScriptedPortal()
    portal.script = {"refused-01": [TOO_OLD], "flaky-0002": [FAULT, FAULT], "broken-003": [FAULT] * 20}
    sender = Sender(portal.url, tmp_path / "q.sqlite3", retry_base_seconds=0.4, retry_max_seconds=0.8)
    try:
        for key in ("refused-01", "flaky-0002", "ok-000003", "broken-003", "ok-000005"):
            _event(sender.outbox, key)
        sender.start()
        sender.wait_until(lambda: sender.outbox.pending() == 0 and len(portal.delivered()) == 3)
        # The refused event was dead-lettered on its one try; the flaky one got through on its
        # third; the broken one failed three times and was parked; the others went straight through.
        first_tries = [key for key, _ in portal.requests[:5]]
        assert first_tries == ["refused-01", "flaky-0002", "ok-000003", "broken-003", "ok-000005"], portal.requests
        assert sorted(portal.delivered()) == ["flaky-0002", "ok-000003", "ok-000005"]
        assert [key for key, _ in portal.requests].count("broken-003") == 3
        letters = {d.key: d for d in sender.outbox.dead_letters()}
        assert letters["refused-01"].code == "captured_at_too_old" and letters["refused-01"].attempts == 1
        assert letters["broken-003"].code == "server_error" and "failed 3 times" in letters["broken-003"].reason
        # The portal hears about them with the heartbeat.
        sender.wait_until(lambda: any(h.get("dead_letters") == 2 for h in portal.heartbeats))
        report = next(h for h in portal.heartbeats if h.get("dead_letters") == 2)
        assert {r["key"] for r in report["recent_dead_letters"]} == {"refused-01", "broken-003"}
        assert any(r["reason"].startswith("captured_at_too_old: ") for r in report["recent_dead_letters"])

        # An admin fixes the cause and replays one letter (from another process, as on a door):
        # it is resent under its key and the report follows.
        portal.script["refused-01"] = [(200, CHECKED_IN)]
        done = _cli(tmp_path / "q.sqlite3", "replay", str(letters["refused-01"].id))
        assert done.returncode == 0 and json.loads(done.stdout)["replayed"][0]["key"] == "refused-01"
        sender.wait_until(lambda: portal.delivered().count("refused-01") == 1)
        sender.wait_until(lambda: portal.heartbeats[-1].get("dead_letters") == 1)
    finally:
        sender.close()
        portal.close()
    status = json.loads(_cli(tmp_path / "q.sqlite3", "status").stdout)
    assert status["pending"] == 0 and status["dead_letters"] == 1
    assert status["dead"][0]["key"] == "broken-003" and status["dead"][0]["code"] == "server_error"


def test_a_portal_that_is_away_or_refuses_the_token_dead_letters_nothing(tmp_path: Path) -> None:
    refusing = ScriptedPortal(status_for_all=401)
    for url in ("http://127.0.0.1:9", refusing.url):  # nothing listening; a token the portal refuses
        queue = tmp_path / f"q{url[-4:].replace(':', '')}.sqlite3"
        sender = Sender(url, queue, dead_letter_tries=1)
        try:
            _event(sender.outbox, "waiting-01")
            _event(sender.outbox, "waiting-02")
            sender.start()
            time.sleep(2.0)
            assert sender.outbox.dead_letter_count() == 0 and sender.outbox.pending() == 2
            assert sender.outbox.head().failures == 0 and sender.client.reachable is False
        finally:
            sender.close()
    refusing.close()


def test_replay_needs_ids_or_all(tmp_path: Path) -> None:
    assert _cli(tmp_path / "q.sqlite3", "replay").returncode == 2
    done = _cli(tmp_path / "q.sqlite3", "replay", "41")
    assert done.returncode == 1 and json.loads(done.stdout)["not_found"] == [41]
    assert json.loads(_cli(tmp_path / "q.sqlite3", "replay", "--all").stdout)["replayed"] == []


def _cli(queue: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_client", *args, "--queue-path", str(queue)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(queue.parent)})


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Any:
    yield
    assert threading.active_count() < 50
