"""Talking to the portal: a websocket (``/ws/device/``) with the device token on the handshake,
and the REST API as the fallback (a portal or proxy that does not offer websockets, or an event
too big for one websocket message).

``deliver`` returns the portal's answer, raises ``Unreachable`` when the event must be retried
later and ``Rejected`` when the portal refused the event itself with a typed 4xx (bad image,
``captured_at_too_old``…) — retrying that would never help, so the sender dead-letters it.
``Unreachable.kind`` says whose fault a failure is (see edge_client.retry):

- ``network``: no answer (connection refused, dropped, timed out);
- ``portal``: the portal as a whole cannot take events now (token refused — 401/403, busy or
  throttling — 429, 503, recognition or model unavailable);
- ``server``: the portal answered this event with a fault (another 5xx, 408, ``server_error``).

A check-in may also be *streamed*: while the burst is captured, ``stream_start`` sends
``burst_start`` on the connected socket and the returned ``BurstStream`` sends each ``frame`` as
it is taken, then ``burst_end``. The event still goes into the on-disk queue under the same key;
when the sender delivers it, ``deliver`` first waits for the stream's ``decision``. A stream that
broke (the socket dropped, a send failed) or that the portal refused (an older portal answers
``unknown_message``) costs nothing but time: the event is delivered whole, under the same key, so
the portal stores it once whichever way it arrived.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from typing import Any

import requests
import websocket

from edge_client.logs import emit

WS_MAX_MESSAGE = 900 * 1024  # the portal's default limit is 1 MiB per websocket message
STREAM_REFUSED_PAUSE = 3600.0  # seconds before trying to stream again after a portal refused it
PORTAL_CODES = {"recognition_unavailable", "model_unavailable", "throttled", "too_many_attempts"}  # try again later
SERVER_CODES = {"server_error"}  # this event hit a fault on the portal


class Unreachable(Exception):
    def __init__(self, message: str, kind: str = "network", code: str = "") -> None:
        super().__init__(message)
        self.kind, self.code = kind, code or kind


class Rejected(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


class BurstStream:
    """One check-in's frames going to the portal as they are taken. The camera loop only queues
    them: a thread of the stream's own sends them, so a slow or stalled network never holds up the
    camera. Nothing raises: a failed send, or a backlog of more than ``MAX_BACKLOG`` messages (the
    network is not keeping up), marks the stream ``broken`` and the event is delivered whole."""

    MAX_BACKLOG = 8

    def __init__(self, ws: websocket.WebSocket, key: str) -> None:
        self.ws, self.key = ws, key
        self.broken = ""
        self.frames = 0
        self.ended_at: float | None = None  # monotonic time burst_end went out
        self._outgoing: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pump = threading.Thread(target=self._send_all, name=f"stream-{key[:8]}", daemon=True)
        self._pump.start()

    def _send_all(self) -> None:
        while True:
            message = self._outgoing.get()
            if message is None:
                return
            if self.broken:
                continue
            try:
                self.ws.send(json.dumps(message))
            except Exception as exc:  # the socket closed under us (the sender dropped it, the portal went away)
                self.broken = self.broken or f"send failed: {exc}"
                continue
            if message["type"] == "burst_end":
                self.ended_at = time.monotonic()

    def _put(self, message: dict[str, Any]) -> bool:
        if not self.broken and self._outgoing.qsize() >= self.MAX_BACKLOG:
            self.broken = "the network is not keeping up with the frames"
        if self.broken:
            return False
        self._outgoing.put(message)
        return True

    def start(self, fps: float, captured_at: str) -> None:
        self._put({"type": "burst_start", "key": self.key, "fps": fps, "captured_at": captured_at})

    def frame(self, jpeg_bytes: bytes, box: list[float] | None) -> bool:
        """Queue the next frame (a JPEG of the sent crop) with the face box in crop pixels, if any."""
        queued = self._put({"type": "frame", "key": self.key, "index": self.frames,
                            "jpeg": base64.b64encode(jpeg_bytes).decode(), "box": box or None})
        if queued:
            self.frames += 1
        return queued

    def end(self) -> bool:
        """Queue burst_end; False when the stream is already broken."""
        queued = self._put({"type": "burst_end", "key": self.key, "frames": self.frames})
        self.close()
        return queued

    def close(self) -> None:
        self._outgoing.put(None)

    def sent(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until everything queued went out; True when burst_end did."""
        self._pump.join(timeout)
        return not self.broken and self.ended_at is not None


class PortalClient:
    def __init__(self, url: str, token: str, transport: str = "auto", timeout: float = 90.0) -> None:
        self.url = url.rstrip("/")
        self.ws_url = "ws" + self.url[len("http"):] + "/ws/device/"
        self.token, self.transport, self.timeout = token, transport, timeout
        self._ws: websocket.WebSocket | None = None
        self._ws_offered = transport != "rest"
        self._lock = threading.RLock()
        self._streams: dict[str, BurstStream] = {}  # streamed check-ins whose decision is not read yet
        self._mail: dict[str, list[dict[str, Any]]] = {}  # their replies, read while waiting for something else
        self._stream_paused_until = 0.0
        self.last_via = ""  # how the last delivered event went: stream, websocket or rest
        self._preview_slot: str | None = None  # the newest preview frame not sent yet
        self._preview_ready = threading.Condition()
        self._preview_thread: threading.Thread | None = None
        self._closed = False
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Device {token}"

    # --- websocket --------------------------------------------------------------------------
    def _socket(self) -> websocket.WebSocket | None:
        if not self._ws_offered:
            return None
        if self._ws is not None and self._ws.connected:
            return self._ws
        try:
            ws = websocket.create_connection(self.ws_url, header=[f"Authorization: Device {self.token}"],
                                             timeout=10, enable_multithread=True)
            hello = json.loads(ws.recv())
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403) and self.transport != "websocket":
                # Channels refuses a bad token by closing the handshake (403): ask REST, which says why.
                self._ws_offered = False
                emit("websocket_refused", logging.WARNING, status=exc.status_code, fallback="rest")
                return None
            if self.transport == "websocket":
                kind = "portal" if exc.status_code in (401, 403, 429, 503) else "network"
                raise Unreachable(f"websocket handshake refused ({exc.status_code})", kind) from exc
            self._ws_offered = False
            emit("websocket_unavailable", logging.WARNING, status=exc.status_code, fallback="rest")
            return None
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            raise Unreachable(f"portal unreachable: {exc}") from exc
        emit("connected", transport="websocket", device=hello.get("device"))
        self._ws = ws
        return ws

    def _drop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
        self._ws = None

    def _ws_request(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        ws = self._socket()
        assert ws is not None
        try:
            ws.send(json.dumps(message))
            while True:
                ws.settimeout(self.timeout)
                reply = json.loads(ws.recv())
                if reply.get("type") == "heartbeat" or self._stash(reply):
                    continue
                if reply.get("key") != message.get("key"):
                    continue
                if reply.get("type") == "error":
                    code = str(reply.get("code", "error"))
                    if code in PORTAL_CODES or code in SERVER_CODES:
                        raise Unreachable(f"{code}: {reply.get('detail')}", "portal" if code in PORTAL_CODES else "server", code)
                    raise Rejected(code, reply.get("detail", ""))
                if reply.get("type") == expect:
                    self.last_via = "websocket"
                    return reply["answer"]
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            self._drop()
            raise Unreachable(f"connection lost: {exc}") from exc

    # --- streamed check-ins ---------------------------------------------------------------------
    def stream_start(self, key: str, fps: float, captured_at: str) -> BurstStream | None:
        """Open a stream for a check-in being captured, on the socket that is already connected
        (never connects: the camera loop must not wait). None when there is no such socket or the
        portal refused streams lately."""
        ws = self._ws
        if ws is None or not ws.connected or time.monotonic() < self._stream_paused_until:
            return None
        stream = BurstStream(ws, key)
        self._streams[key] = stream
        stream.start(fps, captured_at)
        return stream

    def stream_discard(self, key: str) -> None:
        """A stream whose burst ended with no frames: nothing will be delivered under its key."""
        stream = self._streams.pop(key, None)
        if stream is not None:
            stream.end()  # burst_end with 0 frames: the portal drops the stream (writing nothing), so the next burst may start
        self._mail.pop(key, None)

    def _stash(self, reply: dict[str, Any]) -> bool:
        """Keep a reply that belongs to a stream (read while waiting for another answer)."""
        key = reply.get("key")
        if isinstance(key, str) and key in self._streams:
            self._mail.setdefault(key, []).append(reply)
            return True
        return False

    def _stream_answer(self, stream: BurstStream) -> dict[str, Any] | None:
        """The streamed check-in's decision, or None when the event must be delivered whole."""
        key = stream.key
        mail = self._mail.pop(key, [])
        ws = self._ws
        decided = any(reply.get("type") == "decision" for reply in mail)  # read already, by a heartbeat say
        if not decided and (stream.broken or ws is not stream.ws or not ws.connected
                            or not stream.sent(min(self.timeout, 10.0))):
            if ws is stream.ws:  # it failed or stalled: reconnect for the whole event
                try:
                    ws.abort()  # wakes the stream's send if it is still blocked on a stalled connection
                except Exception:
                    pass
                self._drop()
            reason = stream.broken or ("the connection was replaced" if ws is not stream.ws
                                       else "the frames did not go out")
            emit("stream_fallback", logging.WARNING, key=key, reason=reason)
            return None
        try:
            while True:
                for reply in mail:
                    if reply.get("type") == "decision" and isinstance(reply.get("answer"), dict):
                        ended = stream.ended_at or time.monotonic()
                        emit("stream_decided", key=key, frames=stream.frames,
                             after_last_frame_ms=round((time.monotonic() - ended) * 1000))
                        self.last_via = "stream"
                        return reply["answer"]
                    if reply.get("type") == "error":
                        code = str(reply.get("code", "error"))
                        if code == "unknown_message":
                            # An older portal: no streams for a while; this event goes whole.
                            self._stream_paused_until = time.monotonic() + STREAM_REFUSED_PAUSE
                            emit("stream_refused", logging.WARNING, key=key, detail=str(reply.get("detail", ""))[:200])
                        else:
                            reason = f"{code}: {reply.get('detail')}"
                            emit("stream_fallback", logging.WARNING, key=key, reason=reason[:300])
                        # Its other replies (one per frame, say) would still be on this socket:
                        # start clean, and deliver the event whole under the same key.
                        self._drop()
                        return None
                ws.settimeout(self.timeout)
                reply = json.loads(ws.recv())
                mail = [reply] if reply.get("key") == key else []
                if not mail:
                    self._stash(reply)
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            self._drop()
            emit("stream_fallback", logging.WARNING, key=key, reason=f"connection lost: {exc}"[:300])
            return None

    # --- REST --------------------------------------------------------------------------------
    def _rest(self, path: str, data: dict[str, Any] | None = None, files: list[Any] | None = None,
              json_body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.session.post(self.url + path, data=data, files=files, json=json_body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"portal unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        # Only the portal's own JSON answer can refuse an event for good: an HTML or empty 404/405
        # from a proxy mid-deploy (or a wrong portal_url path) is the portal away, not the event.
        typed = isinstance(body, dict)
        if not typed:
            body = {"code": str(response.status_code), "detail": response.text[:200]}
        if response.status_code in (200, 201):
            self.last_via = "rest"
            return body
        code = str(body.get("code", response.status_code))
        token_refused = response.status_code in (401, 403) and code != "invalid_code"
        message = f"HTTP {response.status_code} {code}: {body.get('detail')}"
        if token_refused or response.status_code in (429, 503) or code in PORTAL_CODES:
            raise Unreachable(message, "portal", code)
        if response.status_code >= 500 or response.status_code == 408:
            raise Unreachable(message, "server", code)
        if not typed:
            # Not the portal's own answer (a proxy's HTML page): like a 5xx, the client asks the
            # portal for a heartbeat to tell "the portal is away" from "this event failed".
            raise Unreachable(message, "server", code)
        raise Rejected(code, str(body.get("detail", "")))

    # --- what the client calls ---------------------------------------------------------------
    def deliver(self, kind: str, key: str, captured_at: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if kind == "check_in":
                stream = self._streams.pop(key, None)
                if stream is not None:
                    answer = self._stream_answer(stream)
                    if answer is not None:
                        return answer
                message = {"type": "check_in", "key": key, "captured_at": captured_at, "fps": body["fps"],
                           "frames": body["frames"], "faces": body.get("faces", [])}
                if len(json.dumps(message)) < WS_MAX_MESSAGE and self._socket() is not None:
                    return self._ws_request(message, "decision")
                files = [("frames", (f"{i}.jpg", base64.b64decode(f), "image/jpeg")) for i, f in enumerate(body["frames"])]
                return self._rest("/api/v1/check-ins", {"key": key, "captured_at": captured_at, "fps": body["fps"]}, files)
            if kind == "enrol":
                try:
                    return self._enrol(key, body)
                except Unreachable as exc:
                    if exc.code == "too_many_attempts":
                        # This device's enrolment codes are locked out for a while: this event waits
                        # its own retry; the check-ins behind it keep flowing.
                        raise Unreachable(str(exc), "server", exc.code) from exc
                    raise
            raise ValueError(f"unknown event kind {kind!r}")

    def _enrol(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        message = {"type": "enrol", "key": key, "code": body["code"], "photos": [body["photo"]]}
        if len(json.dumps(message)) < WS_MAX_MESSAGE and self._socket() is not None:
            return self._ws_request(message, "enrolled")
        files = [("photo", ("photo.jpg", base64.b64decode(body["photo"]), "image/jpeg"))]
        return self._rest("/api/v1/device/enrol", {"code": body["code"], "key": key}, files)

    def heartbeat(self, report: dict[str, Any] | None = None) -> None:
        """Tell the portal the device is alive; ``report`` (``dead_letters``, ``recent_dead_letters``)
        goes with it for the live monitor."""
        with self._lock:
            ws = self._socket()
            if ws is None:
                self._rest("/api/v1/device/heartbeat", json_body=report or {})
                return
            try:
                ws.send(json.dumps({"type": "heartbeat", **(report or {})}))
                ws.settimeout(10)
                while True:
                    reply = json.loads(ws.recv())
                    if reply.get("type") == "heartbeat":
                        return
                    if self._stash(reply):
                        continue
                    if reply.get("type") == "error" and reply.get("key") is None:
                        raise Rejected(str(reply.get("code", "error")), str(reply.get("detail", "")))
            except (OSError, websocket.WebSocketException, ValueError) as exc:
                self._drop()
                raise Unreachable(f"connection lost: {exc}") from exc

    def preview(self, jpeg: bytes, faces: list[dict[str, Any]]) -> None:
        """Best effort, websocket only: the frame is handed to a thread of its own (a newer frame
        replaces one not sent yet), so a stalled or busy connection never holds up the camera loop."""
        message = json.dumps({"type": "preview", "image": base64.b64encode(jpeg).decode(), "faces": faces})
        with self._preview_ready:
            self._preview_slot = message
            if self._preview_thread is None:
                self._preview_thread = threading.Thread(target=self._send_previews, name="preview", daemon=True)
                self._preview_thread.start()
            self._preview_ready.notify()

    def _send_previews(self) -> None:
        while True:
            with self._preview_ready:
                while self._preview_slot is None and not self._closed:
                    self._preview_ready.wait()
                if self._closed:
                    return
                message, self._preview_slot = self._preview_slot, None
            if not self._lock.acquire(blocking=False):
                continue  # the connection is busy with an event: this frame is dropped
            try:
                ws = self._ws
                if ws is not None and ws.connected:
                    ws.send(message)
            except Exception:
                self._drop()
            finally:
                self._lock.release()

    def close(self) -> None:
        with self._preview_ready:
            self._closed = True
            self._preview_ready.notify()
        with self._lock:
            self._drop()
        self.session.close()
