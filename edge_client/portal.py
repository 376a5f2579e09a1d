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
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

import requests
import websocket

from edge_client.logs import emit

WS_MAX_MESSAGE = 900 * 1024  # the portal's default limit is 1 MiB per websocket message
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


class PortalClient:
    def __init__(self, url: str, token: str, transport: str = "auto", timeout: float = 90.0) -> None:
        self.url = url.rstrip("/")
        self.ws_url = "ws" + self.url[len("http"):] + "/ws/device/"
        self.token, self.transport, self.timeout = token, transport, timeout
        self._ws: websocket.WebSocket | None = None
        self._ws_offered = transport != "rest"
        self._lock = threading.RLock()
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
                if reply.get("type") == "heartbeat":
                    continue
                if reply.get("key") != message.get("key"):
                    continue
                if reply.get("type") == "error":
                    code = str(reply.get("code", "error"))
                    if code in PORTAL_CODES or code in SERVER_CODES:
                        raise Unreachable(f"{code}: {reply.get('detail')}", "portal" if code in PORTAL_CODES else "server", code)
                    raise Rejected(code, reply.get("detail", ""))
                if reply.get("type") == expect:
                    return reply["answer"]
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            self._drop()
            raise Unreachable(f"connection lost: {exc}") from exc

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
            body = {"code": "error", "detail": response.text[:200]}
        if not isinstance(body, dict):
            body = {"code": "error", "detail": str(body)[:200]}
        if response.status_code in (200, 201):
            return body
        code = str(body.get("code", response.status_code))
        token_refused = response.status_code in (401, 403) and code != "invalid_code"
        message = f"HTTP {response.status_code} {code}: {body.get('detail')}"
        if token_refused or response.status_code in (429, 503) or code in PORTAL_CODES:
            raise Unreachable(message, "portal", code)
        if response.status_code >= 500 or response.status_code == 408:
            raise Unreachable(message, "server", code)
        raise Rejected(code, str(body.get("detail", "")))

    # --- what the client calls ---------------------------------------------------------------
    def deliver(self, kind: str, key: str, captured_at: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if kind == "check_in":
                message = {"type": "check_in", "key": key, "captured_at": captured_at, "fps": body["fps"],
                           "frames": body["frames"], "faces": body.get("faces", [])}
                if len(json.dumps(message)) < WS_MAX_MESSAGE and self._socket() is not None:
                    return self._ws_request(message, "decision")
                files = [("frames", (f"{i}.jpg", base64.b64decode(f), "image/jpeg")) for i, f in enumerate(body["frames"])]
                return self._rest("/api/v1/check-ins", {"key": key, "captured_at": captured_at, "fps": body["fps"]}, files)
            if kind == "enrol":
                message = {"type": "enrol", "key": key, "code": body["code"], "photos": [body["photo"]]}
                if len(json.dumps(message)) < WS_MAX_MESSAGE and self._socket() is not None:
                    return self._ws_request(message, "enrolled")
                files = [("photo", ("photo.jpg", base64.b64decode(body["photo"]), "image/jpeg"))]
                return self._rest("/api/v1/device/enrol", {"code": body["code"], "key": key}, files)
            raise ValueError(f"unknown event kind {kind!r}")

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
                    if reply.get("type") == "error" and reply.get("key") is None:
                        raise Rejected(str(reply.get("code", "error")), str(reply.get("detail", "")))
            except (OSError, websocket.WebSocketException, ValueError) as exc:
                self._drop()
                raise Unreachable(f"connection lost: {exc}") from exc

    def preview(self, jpeg: bytes, faces: list[dict[str, Any]]) -> None:
        """Best effort, websocket only, never blocks the camera loop on a busy connection."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            ws = self._ws
            if ws is not None and ws.connected:
                ws.send(json.dumps({"type": "preview", "image": base64.b64encode(jpeg).decode(), "faces": faces}))
        except Exception:
            self._drop()
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._drop()
        self.session.close()
