"""The door keeps its promises when things go wrong (found by a correctness probe): a locked-out
enrolment does not hold the check-ins behind it; the LED stops saying "working" once an event
waits for a retry; the sender outlives a disk error; a clock stepped back does not park an event;
an empty streamed burst ends the portal's stream; a portal down behind its proxy (502/504 for
everything, or an untyped 404 page) dead-letters nothing; a killed write loses nothing
acknowledged; a corrupt queue file is set aside and the door starts. No Django: these run on the
edge client's oldest Python too."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_client.outbox import Outbox
from edge_client.portal import PortalClient
from edge_client.tests.test_delivery import FAULT, ScriptedPortal, Sender, _event
from edge_client.tests.test_streaming import ScriptedSocketPortal

LOCKED = (429, {"code": "too_many_attempts", "detail": "Too many wrong enrolment codes from this device; wait 15 minutes."})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def test_a_locked_out_enrolment_does_not_hold_the_check_ins_behind_it(tmp_path: Path) -> None:
    portal = ScriptedPortal()
    portal.script["enrolkey001"] = [LOCKED] * 1000
    sender = Sender(portal.url, tmp_path / "q.sqlite3")
    sender.outbox.put(key="enrolkey001", kind="enrol", captured_at=_now(), body={"code": "123456", "photo": "AA=="})
    _event(sender.outbox, "checkin0001", _now())
    sender.start()
    try:
        sender.wait_until(lambda: "checkin0001" in portal.delivered())
        assert sender.client.reachable  # the portal answered: it is not "away"
        assert sender.outbox.dead_letter_count() == 0  # the enrolment waits for its own retry
    finally:
        sender.close()
        portal.close()


def test_the_led_stops_saying_working_while_an_event_waits_for_its_retry(tmp_path: Path) -> None:
    portal = ScriptedPortal()
    portal.script["checkin0001"] = [FAULT]
    sender = Sender(portal.url, tmp_path / "q.sqlite3", fresh_seconds=600, retry_base_seconds=30, retry_max_seconds=60)
    _event(sender.outbox, "checkin0001", _now())
    sender.led.show("working")  # what the burst left on for the person at the door
    sender.start()
    try:
        sender.wait_until(lambda: len(portal.requests) == 1)
        sender.wait_until(lambda: sender.led.state != "working")
        assert sender.led.state == "unreachable" and sender.outbox.pending() == 1  # queued, said so
    finally:
        sender.close()
        portal.close()


def test_the_sender_outlives_a_disk_error(tmp_path: Path) -> None:
    import sqlite3

    portal = ScriptedPortal()
    sender = Sender(portal.url, tmp_path / "q.sqlite3")
    real = sender.outbox.delivered
    calls = []

    def flaky(seq, answer):  # noqa: ANN001, ANN202
        calls.append(seq)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(seq, answer)

    sender.outbox.delivered = flaky
    _event(sender.outbox, "checkin0001", _now())
    sender.start()
    try:
        sender.wait_until(lambda: calls)
        _event(sender.outbox, "checkin0002", _now())
        sender.wait_until(lambda: sender.outbox.pending() == 0, timeout=30)
        assert sender.client._sender.is_alive()
        assert portal.delivered().count("checkin0001") == 2  # sent again under the same key: stored once
    finally:
        sender.close()
        portal.close()


def test_a_clock_stepped_back_does_not_park_an_event(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "q.sqlite3"))
    _event(outbox, "checkin0001", _now())
    item = outbox.head()
    ahead = time.time() + 86400  # booted with the clock a day ahead, failed once; NTP then stepped it back
    outbox.retry_later(item.seq, "HTTP 500", at=ahead + 2.0)
    assert outbox.head() is not None and outbox.head().key == "checkin0001" and outbox.due_in() == 0.0
    outbox.retry_later(item.seq, "HTTP 500", at=time.time() + 60)  # an ordinary retry still waits
    assert outbox.head() is None and 50 < outbox.due_in() <= 60
    outbox.close()


def test_an_empty_streamed_burst_ends_the_portal_s_stream() -> None:
    portal = ScriptedSocketPortal(lambda n, m, c: m["type"] in ("frame", "burst_end"))
    client = PortalClient(portal.url, "t" * 20, "websocket", timeout=5)
    try:
        client.heartbeat()
        first = client.stream_start("emptyburst01", 12, _now())
        client.stream_discard("emptyburst01")  # what the door does with a burst that got no frames
        first._pump.join(2)
        second = client.stream_start("nextburst002", 12, _now())
        second.end()
        second._pump.join(2)
        time.sleep(0.3)
        sent = [(m["type"], m["key"]) for _, m in portal.messages if m["type"] != "heartbeat"]
        assert sent.index(("burst_end", "emptyburst01")) < sent.index(("burst_start", "nextburst002")), sent
        assert next(m for _, m in portal.messages if m.get("key") == "emptyburst01" and m["type"] == "burst_end")[
            "frames"] == 0
    finally:
        client.close()
        portal.close()


@pytest.mark.parametrize("status", [502, 504])
def test_a_portal_down_behind_its_proxy_dead_letters_nothing(tmp_path: Path, status: int) -> None:
    portal = ScriptedPortal(status_for_all=status)  # the proxy's upstream is down: heartbeats get it too
    sender = Sender(portal.url, tmp_path / "q.sqlite3")  # dead-letter bounds scaled down to 3 tries, age 0
    for i in range(3):
        _event(sender.outbox, f"checkin000{i}")
    sender.start()
    try:
        sender.wait_until(lambda: not sender.client.reachable)
        time.sleep(3)
        assert sender.outbox.dead_letter_count() == 0 and sender.outbox.pending() == 3
    finally:
        sender.close()
        portal.close()


def test_an_untyped_404_page_is_the_portal_away_not_a_refusal(tmp_path: Path) -> None:
    class NotFound(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html><body><h1>404 Not Found</h1>nginx</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = Sender(f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "q.sqlite3")
    for i in range(3):
        _event(sender.outbox, f"checkin000{i}")
    sender.start()
    try:
        sender.wait_until(lambda: not sender.client.reachable)
        time.sleep(2)
        assert sender.outbox.dead_letter_count() == 0 and sender.outbox.pending() == 3
    finally:
        sender.close()
        server.shutdown()
        server.server_close()


WRITER = """
import sys
from edge_client.outbox import Outbox
outbox = Outbox(sys.argv[1])
i = 0
while True:
    outbox.put(key=f"{sys.argv[2]}{i:08d}", kind="check_in", captured_at="2026-12-01T09:00:00+00:00",
               body={"fps": 12, "frames": ["A" * 40000], "faces": []})
    print(i, flush=True)
    i += 1
"""


def test_a_killed_write_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite3")
    for round_ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, path, f"r{round_}k"], stdout=subprocess.PIPE,
                                  text=True, cwd=str(Path(__file__).resolve().parents[2]))
        acknowledged = -1
        deadline = time.monotonic() + 1.0 + 0.3 * round_
        while time.monotonic() < deadline:
            line = writer.stdout.readline()
            assert line, "the writer died"
            acknowledged = int(line)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        outbox = Outbox(path)
        assert outbox._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = {row[0] for row in outbox._db.execute("SELECT key FROM outbox")}
        assert f"r{round_}k{acknowledged:08d}" in keys and outbox.set_aside is None
        outbox.close()


def test_a_corrupt_queue_file_is_set_aside_and_the_door_starts(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)
    outbox = Outbox(str(path))
    assert outbox.set_aside is not None and Path(outbox.set_aside).read_bytes().startswith(b"\x00garbage")
    _event(outbox, "checkin0001", _now())
    assert outbox.pending() == 1
    outbox.close()


def test_a_stalled_socket_never_holds_up_the_camera_loop_s_previews() -> None:
    import socket

    stall = threading.Event()

    def script(n, m, c):  # noqa: ANN001, ANN202
        if m["type"] == "preview":
            stall.wait(30)  # the portal (or the network) stops reading
            return True
        return False

    portal = ScriptedSocketPortal(script, small_buffers=True)
    client = PortalClient(portal.url, "t" * 20, "websocket", timeout=5)
    try:
        client.heartbeat()
        client._ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client._ws.settimeout(3)
        worst = 0.0
        for _ in range(40):  # what the camera loop calls every couple of seconds
            started = time.monotonic()
            client.preview(b"\xff" * 64_000, [])
            worst = max(worst, time.monotonic() - started)
        assert worst < 0.5, worst
    finally:
        stall.set()
        client.close()
        portal.close()


def test_a_queue_held_by_another_process_is_never_set_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'database is locked' is an OperationalError, a DatabaseError too: it must not look like corruption."""
    import sqlite3

    path = tmp_path / "q.sqlite3"
    first = Outbox(str(path))
    _event(first, "checkin0001", _now())
    first.close()

    def locked(queue_path: str) -> sqlite3.Connection:
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(Outbox, "_open", staticmethod(locked))
        with pytest.raises(sqlite3.OperationalError):
            Outbox(str(path))
    assert not list(tmp_path.glob("*.corrupt-*"))
    again = Outbox(str(path))
    assert again.set_aside is None and again.pending() == 1
    again.close()


def test_a_malformed_queued_event_waits_its_retry_and_the_rest_flow(tmp_path: Path) -> None:
    portal = ScriptedPortal()
    sender = Sender(portal.url, tmp_path / "q.sqlite3")
    sender.outbox.put(key="broken00001", kind="check_in", captured_at=_now(), body={"frames": ["AA=="]})  # no fps
    _event(sender.outbox, "checkin0001", _now())
    sender.start()
    try:
        sender.wait_until(lambda: "checkin0001" in portal.delivered())
        sender.wait_until(lambda: sender.outbox.dead_letter_count() == 1)  # after its tries, out of the way
        assert sender.outbox.dead_letters()[0].key == "broken00001" and sender.client._sender.is_alive()
    finally:
        sender.close()
        portal.close()
