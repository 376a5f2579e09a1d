"""Streamed check-ins: the real client loop (camera = the fixture video, the real detector and
tracker, the on-disk queue, the sender thread) against a scripted websocket portal on loopback,
written here on the standard library (the real portal is in test_end_to_end). Each frame goes
out as it is taken; when the stream is refused (an older portal) or the socket drops, the event is
delivered whole under the same key, exactly once."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edge_client import camera, config, hardware
from edge_client.client import EdgeClient
from edge_client.detector import create_detector
from edge_client.outbox import Outbox
from edge_client.portal import PortalClient
from edge_client.tests.conftest import BLINK_VIDEO, RecordingLed

CHECKED_IN = {"outcome": "checked_in", "message": "Welcome, Sam", "employee": "Sam Selfie"}
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self.lock = threading.Lock()

    def handshake(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode("latin-1").strip()
            if not line:
                break
            lines.append(line)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
        self.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        return headers.get("authorization", "")

    def read(self) -> dict[str, Any] | None:
        """The next text message (pings answered), or None when the client closed."""
        while True:
            head = self.file.read(2)
            if len(head) < 2:
                return None
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.file.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.file.read(8))[0]
            mask = self.file.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.file.read(length)))
            if opcode == 8:
                return None
            if opcode == 9:
                self._frame(0x8A, payload)
            elif opcode == 1:
                return json.loads(payload)

    def _frame(self, first: int, payload: bytes) -> None:
        size = len(payload)
        head = bytes([first, size]) if size < 126 else (bytes([first, 126]) + struct.pack(">H", size) if size < 65536
                                                         else bytes([first, 127]) + struct.pack(">Q", size))
        with self.lock:
            self.sock.sendall(head + payload)

    def send(self, message: dict[str, Any]) -> None:
        self._frame(0x81, json.dumps(message).encode())

    def drop(self) -> None:
        """Gone without a goodbye, as when the network or the portal dies."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ScriptedSocketPortal:
    """Answers /ws/device/ like the portal: a hello, heartbeats, check_in -> decision, burst_start
    -> burst_started (attendance.burst's protocol). ``script``
    (connection number, message, connection) -> True when it handled the message itself. Every
    message is recorded as (connection number, message)."""

    def __init__(self, script: Callable[[int, dict[str, Any], Connection], bool], small_buffers: bool = False) -> None:
        self.script = script
        self.messages: list[Any] = []
        self.decided: dict[str, int] = {}  # key -> times a decision was stored (the portal's idempotency)
        self.server = socket.create_server(("127.0.0.1", 0))
        if small_buffers:  # so that a portal that stops reading soon backs up the door's sends
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(Connection(sock), self.connections), daemon=True).start()

    def _serve(self, conn: Connection, number: int) -> None:
        try:
            conn.handshake()
            conn.send({"type": "hello", "device": "Front door", "server_time": "2026-12-01T09:00:00+00:00"})
            while True:
                message = conn.read()
                if message is None:
                    return
                self.messages.append((number, message))
                if self.script(number, message, conn):
                    continue
                if message["type"] == "burst_start":
                    conn.send({"type": "burst_started", "key": message["key"]})
                if message["type"] == "heartbeat":
                    conn.send({"type": "heartbeat", "server_time": "2026-12-01T09:00:00+00:00"})
                elif message["type"] == "check_in":
                    self.decide(message["key"], conn)
        except OSError:
            return

    def decide(self, key: str, conn: Connection) -> None:
        self.decided[key] = self.decided.get(key, 0) + (0 if key in self.decided else 1)
        conn.send({"type": "decision", "key": key, "answer": CHECKED_IN})

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["type"] == kind]

    def close(self) -> None:
        self.server.close()


def streaming_portal(number: int, message: dict[str, Any], conn: Connection,
                     portal: list[ScriptedSocketPortal]) -> bool:
    if message["type"] == "burst_end":
        portal[0].decide(message["key"], conn)
        return True
    return message["type"] == "frame"


# Bursts of 1 s at 12 fps: about 12 frames, fewer on a loaded machine (detection paces the camera loop).
def _run_door(portal: ScriptedSocketPortal, tmp_path: Path, caplog: Any, small_buffers: bool = False) -> dict[str, Any]:
    settings = config.load(None, env={}, flags={
        "portal_url": portal.url, "token": "t" * 20, "queue_path": str(tmp_path / "q.sqlite3"), "min_face": 40,
        "burst_seconds": 1.0, "burst_fps": 12, "preview_seconds": 0, "exit_when_done": True, "drain_timeout": 30,
        "retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "heartbeat_seconds": 30})
    outbox = Outbox(settings.queue_path)
    client_portal = PortalClient(settings.portal_url, settings.resolved_token(), settings.transport, timeout=10)
    client_portal.heartbeat()  # connected before the person arrives, as a door that has been up a while
    if small_buffers:
        client_portal._ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    led = hardware.LedController(RecordingLed(), hold=0.05)
    source = camera.open_source(str(BLINK_VIDEO), realtime=True)
    client = EdgeClient(settings, source, create_detector("auto", 40), led, hardware.Buttons(), outbox, client_portal)
    with caplog.at_level(logging.INFO, logger="edge_client"):
        client.run()
    led.close()
    records = [r for r in caplog.records if r.name == "edge_client"]
    events: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        events.setdefault(record.getMessage(), []).append(getattr(record, "fields", {}))
    result = {"events": events, "pending": outbox.pending(), "dead": outbox.dead_letter_count(), "records": records,
              "leds": [f["state"] for f in events.get("led", [])]}
    client_portal.close()
    outbox.close()
    return result


def test_each_frame_goes_out_as_it_is_taken_and_the_stream_is_decided(tmp_path: Path, caplog: Any) -> None:
    holder: list[ScriptedSocketPortal] = []
    portal = ScriptedSocketPortal(lambda n, m, c: streaming_portal(n, m, c, holder))
    holder.append(portal)
    try:
        result = _run_door(portal, tmp_path, caplog)
    finally:
        portal.close()
    events = result["events"]
    (start,) = portal.of_type("burst_start")
    frames = portal.of_type("frame")
    (end,) = portal.of_type("burst_end")
    key = start["key"]
    assert start["fps"] == 12 and start["captured_at"].endswith("+00:00")
    assert len(frames) >= 5 and [f["index"] for f in frames] == list(range(len(frames)))
    assert all(f["key"] == key for f in frames) and end == {"type": "burst_end", "key": key, "frames": len(frames)}
    # Each frame is the JPEG of the sent crop, with the detected face inside it.
    image = cv2.imdecode(np.frombuffer(base64.b64decode(frames[0]["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = frames[0]["box"]
    assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0] and x2 - x1 > 30
    # The frames went out while the burst was captured, before it ended, and nothing went twice.
    order = [m["type"] for _, m in portal.messages if m["type"] != "heartbeat"]
    assert order == ["burst_start"] + ["frame"] * len(frames) + ["burst_end"]
    assert portal.of_type("check_in") == [] and portal.decided == {key: 1}
    (decision,) = events["decision"]
    assert decision["key"] == key and decision["via"] == "stream" and decision["outcome"] == "checked_in"
    assert events["stream_decided"][0]["frames"] == len(frames) and events["queued"][0]["streamed"] is True
    assert result["pending"] == 0 and result["dead"] == 0
    assert result["leds"].index("working") < result["leds"].index("accepted")


def test_an_older_portal_refusing_streams_gets_the_whole_burst_under_the_same_key(tmp_path: Path, caplog: Any) -> None:
    def old_portal(number: int, message: dict[str, Any], conn: Connection) -> bool:
        if message["type"] in ("burst_start", "frame", "burst_end"):  # the portal before streams
            conn.send({"type": "error", "key": message.get("key"), "code": "unknown_message",
                       "detail": "type must be heartbeat, check_in, enrol or preview."})
            return True
        return False

    portal = ScriptedSocketPortal(old_portal)
    try:
        result = _run_door(portal, tmp_path, caplog)
    finally:
        portal.close()
    events = result["events"]
    key = portal.of_type("burst_start")[0]["key"]
    (whole,) = portal.of_type("check_in")
    assert whole["key"] == key and len(whole["frames"]) == len(portal.of_type("frame")) >= 5
    assert portal.decided == {key: 1}
    assert events["stream_refused"][0]["key"] == key
    (decision,) = events["decision"]
    assert decision["key"] == key and decision["via"] == "websocket" and decision["attempts"] == 1
    assert result["pending"] == 0 and result["dead"] == 0 and "dead_letter" not in events
    assert result["leds"].index("working") < result["leds"].index("accepted") and "rejected" not in result["leds"]


def test_a_socket_dropped_mid_burst_delivers_the_whole_burst_once_under_the_same_key(tmp_path: Path,
                                                                                    caplog: Any) -> None:
    def dropping_portal(number: int, message: dict[str, Any], conn: Connection) -> bool:
        if number == 1 and message["type"] == "frame" and message["index"] == 3:
            conn.drop()  # the network fails while the person is still in front of the door
            raise OSError("dropped")
        return message["type"] in ("frame", "burst_end")

    portal = ScriptedSocketPortal(dropping_portal)
    try:
        result = _run_door(portal, tmp_path, caplog)
    finally:
        portal.close()
    events = result["events"]
    key = portal.of_type("burst_start")[0]["key"]
    assert [m["type"] for n, m in portal.messages if n > 1 and m["type"] != "heartbeat"] == ["check_in"]
    (whole,) = portal.of_type("check_in")
    assert whole["key"] == key and len(whole["frames"]) >= 5 and portal.decided == {key: 1}
    assert portal.of_type("burst_end") == []
    assert events["stream_fallback"][0]["key"] == key and events["queued"][0]["streamed"] is False
    (decision,) = events["decision"]
    assert decision["key"] == key and decision["via"] == "websocket"
    assert result["pending"] == 0 and result["dead"] == 0
    assert result["leds"].index("working") < result["leds"].index("accepted") and "rejected" not in result["leds"]


def test_a_socket_dropped_before_the_decision_asks_again_under_the_same_key(tmp_path: Path, caplog: Any) -> None:
    """The portal decided (and stored) the streamed burst, but the answer never reached the door:
    the door sends the whole burst under the same key and gets the stored answer; one decision."""
    holder: list[ScriptedSocketPortal] = []

    def decides_then_drops(number: int, message: dict[str, Any], conn: Connection) -> bool:
        if message["type"] == "burst_end":
            holder[0].decided[message["key"]] = 1  # stored, answer lost
            conn.drop()
            raise OSError("dropped")
        return message["type"] == "frame"

    portal = ScriptedSocketPortal(decides_then_drops)
    holder.append(portal)
    try:
        result = _run_door(portal, tmp_path, caplog)
    finally:
        portal.close()
    events = result["events"]
    key = portal.of_type("burst_start")[0]["key"]
    assert [m["key"] for m in portal.of_type("check_in")] == [key] and portal.decided == {key: 1}
    assert "connection lost" in events["stream_fallback"][0]["reason"]
    assert [d["key"] for d in events["decision"]] == [key]
    assert result["pending"] == 0 and result["dead"] == 0 and "accepted" in result["leds"]


def test_a_stalled_network_never_holds_up_the_camera(tmp_path: Path, caplog: Any) -> None:
    """The portal stops reading in the middle of a stream (a stalled network): the camera loop only
    queues frames, so the burst is captured on time; the stream gives up and the whole burst goes
    on a new connection under the same key."""
    def stalls(number: int, message: dict[str, Any], conn: Connection) -> bool:
        if number == 1 and message["type"] == "frame":
            time.sleep(30)  # stops reading: the door's sends back up
            raise OSError("stalled")
        return False

    portal = ScriptedSocketPortal(stalls, small_buffers=True)
    try:
        result = _run_door(portal, tmp_path, caplog, small_buffers=True)
    finally:
        portal.close()
    events = result["events"]
    key = portal.of_type("burst_start")[0]["key"]
    (whole,) = portal.of_type("check_in")
    assert whole["key"] == key and len(whole["frames"]) >= 5 and portal.decided == {key: 1}
    # (the backlog gives up during the burst, or after it the blocked send times out: whichever
    # comes first depends on how many frames this machine took)
    reasons = ("the network is not keeping up", "send failed", "the frames did not go out")
    assert events["stream_fallback"][0]["reason"].startswith(reasons)
    started, queued = (next(r for r in result["records"] if r.getMessage() == name)
                       for name in ("burst_started", "queued"))
    assert queued.created - started.created < 1.6, "a one-second burst was not held up by the network"
    assert len(portal.of_type("frame")) < len(whole["frames"])
    (decision,) = events["decision"]
    assert decision["key"] == key and decision["via"] == "websocket" and result["dead"] == 0
