"""Websockets: the live monitor (managers and admins) and device ingest (device tokens).

Monitor: ``/ws/monitor/``. Session-authenticated managers and admins join the groups of their
audience (attendance.events: admins one group; managers their department's, unknown faces' and
devices' groups) and so receive only the recognition events they may see (admins: all; managers:
their department's employees, unknown faces, themselves), device online/offline changes and, for one device they choose,
its low-rate annotated preview frames (the camera view: admins, or every manager with
``ROLLCALL_CAMERA_VIEW=managers``). A client message ``{"type": "watch", "device": ID or
null, "preview": bool}`` sets the device filter; the ``watching`` answer says whether the preview was granted.

Device: ``/ws/device/`` with ``Authorization: Device <token>`` on the handshake. Messages:
``heartbeat`` (optionally with the device's dead-letter report: ``dead_letters``, a count, and
``recent_dead_letters``, a list of {key, captured_at, reason}); ``check_in`` (key, captured_at, fps, frames as base64 JPEG) answered by a
``decision`` carrying the same key; ``preview`` (a base64 JPEG and face boxes); ``enrol``
(a manager's one-time enrolment code and a photo). A repeated check-in key is answered with the
first answer and stored once (the same service as the REST fallback). A burst may also be streamed
frame by frame as it is captured (``burst_start``, ``frame``..., ``burst_end`` -> ``decision``): the
portal works on the frames as they arrive, so the answer is ready when capture ends; the protocol
is in attendance.burst's docstring.

Kiosk: ``/ws/kiosk/``, the kiosk page's streamed check-in: the same three burst messages (the
server makes each stream's key; the browser may leave it out, and may send a ``challenge`` token in
``burst_start``). Allowed as the kiosk page's REST check-in is: a manager's session, or a device
token, given as ``Authorization: Device <token>`` on the handshake or (browsers cannot set that
header) in a first message ``{"type": "auth", "token": T}``, answered ``{"type": "authorised"}``.
Anything else is answered ``not_allowed``; a wrong token also closes the socket (4401). The
manager's session is checked again at every ``burst_start`` and ``burst_end`` (as a device's token
is): once it is signed out, expired, its password changed, or the manager deactivated or no longer
a manager, the answer is ``not_allowed`` and the socket closes (4401); nothing is written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from attendance.burst import BurstError, StreamedBurst
from attendance.events import device_group, preview_group, preview_published, viewer_groups
from attendance.services import (
    BURST_MAX_FRAMES,
    CAPTURED_AT_DEVICES_ONLY,
    IDEMPOTENCY_KEY,
    CaptureTimeError,
    _capture_time,
    burst_answered,
    burst_submit,
    check_in_submit,
    device_heartbeat,
)
from portal.models import Device, Employee
from portal.permissions import (
    cameras_for,
    check_in_answer_for,
    employee_of,
    is_admin,
    is_manager,
    kiosk_session_still_valid,
    may_use_kiosk_page,
    session_user_now,
)
from portal.services import device_connected, device_gone
from portal.throttling import socket_bad_token, socket_device_allowed
from recognition.pipeline.errors import PipelineError

MAX_PREVIEW_BYTES = 256 * 1024
log = logging.getLogger(__name__)


class JsonTextFrames:
    """Each message is one JSON object in a text frame; anything else (a binary frame, text that
    is not JSON, JSON nested too deep to decode) is answered with a bad_request error and the
    connection stays up. Mixed in before AsyncJsonWebsocketConsumer."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.message_refused("Send each message as JSON in a text frame (binary frames are not read).")
            return
        try:
            content = await self.decode_json(text_data)
        except (ValueError, RecursionError):  # not JSON, not UTF-8 JSON, or nested too deep
            await self.message_refused("The message is not JSON (or is nested too deeply).")
            return
        await self.receive_json(content, **kwargs)

    async def message_refused(self, detail: str) -> None:
        await self.send_json({"type": "error", "key": None, "code": "bad_request", "detail": detail})


@dataclass(frozen=True)
class Viewer:
    admin: bool
    employee_id: int | None
    department_id: int | None
    cameras: bool = False  # may watch a door's camera view (portal.permissions.may_view_cameras)

    @property
    def groups(self) -> list[str]:
        """The audience groups this viewer's socket joins: the events sent to them are exactly
        those it may see (attendance.events picks each event's groups)."""
        return viewer_groups(admin=self.admin, employee_id=self.employee_id, department_id=self.department_id)


def _viewer(user: Any) -> Viewer | None:
    if user is None or not is_manager(user):
        return None
    employee: Employee | None = employee_of(user)
    admin = is_admin(user)
    return Viewer(admin=admin, employee_id=employee.pk if employee else None,
                  department_id=employee.department_id if employee else None, cameras=cameras_for(admin=admin, manager=True))


def _viewer_now(session_key: str | None, user_pk: int) -> Viewer | None:
    """What the monitor socket's viewer may see now: from its session (signed out, expired or a
    changed password: None), or, for a socket whose scope carries a user but no session (an ASGI
    stack without the session middleware, Channels' test communicator), from the user's row."""
    if session_key is None:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=user_pk, is_active=True).first()
    else:
        user = session_user_now(session_key, user_pk)
    return _viewer(user)


class MonitorConsumer(JsonTextFrames, AsyncJsonWebsocketConsumer):
    """The live monitor. The viewer's right to it is read again before an event is sent (and a
    ``watch`` is taken), at most every ``ROLLCALL_MONITOR_RECHECK_SECONDS``: a manager who signed
    out, was deactivated, demoted or moved to another department gets ``not_allowed`` and the
    socket closes (4401); the page then reloads, so it shows what they may see now."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.viewer = await database_sync_to_async(_viewer)(user)
        if self.viewer is None:
            await self.close(code=CLOSE_NOT_A_MONITOR)
            return
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.user_pk = user.pk
        self.checked_at = time.monotonic()
        self.revoked = False
        self.device_filter: int | None = None
        self.preview_device: int | None = None
        for group in self.viewer.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "viewer", None) is None:
            return
        for group in self.viewer.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.preview_device is not None:
            await self.channel_layer.group_discard(preview_group(self.preview_device), self.channel_name)

    async def message_refused(self, detail: str) -> None:
        await self.send_json({"kind": "error", "code": "bad_request", "detail": detail})

    async def _still_allowed(self) -> bool:
        if self.revoked:
            return False
        if time.monotonic() - self.checked_at < settings.ROLLCALL_MONITOR_RECHECK_SECONDS:
            return True
        try:
            viewer = await database_sync_to_async(_viewer_now)(self.session_key, self.user_pk)
        except Exception:  # noqa: BLE001 - the database or session store is down: send nothing, keep the socket
            log.warning("monitor: could not re-read the viewer's rights; event not sent", exc_info=True)
            return False
        # The audience is what matters: an admin whose employee row moved still sees everything.
        if viewer is None or (viewer.groups, viewer.cameras) != (self.viewer.groups, self.viewer.cameras):
            self.revoked = True
            await self.send_json({"kind": "error", "code": "not_allowed",
                                  "detail": "Your session ended or your access changed: reload the page."})
            await self.close(code=CLOSE_NOT_ALLOWED)
            return False
        self.checked_at = time.monotonic()
        return True

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await self._still_allowed():
            return
        if not isinstance(content, dict) or content.get("type") != "watch":
            await self.send_json({"kind": "error", "code": "unknown_message", "detail": "Send {\"type\": \"watch\", ...}."})
            return
        device = content.get("device")
        if device is not None and not isinstance(device, int):
            await self.send_json({"kind": "error", "code": "bad_request", "detail": "device must be an id or null."})
            return
        self.device_filter = device
        preview = bool(content.get("preview")) and device is not None and self.viewer.cameras
        if self.preview_device is not None:
            await self.channel_layer.group_discard(preview_group(self.preview_device), self.channel_name)
            self.preview_device = None
        if preview:
            self.preview_device = device
            await self.channel_layer.group_add(preview_group(device), self.channel_name)
        await self.send_json({"kind": "watching", "device": device, "preview": preview})

    async def monitor_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event.get("kind") == "preview":
            if event.get("device_id") != self.preview_device:
                return
        elif self.device_filter is not None and event.get("kind") == "recognition" and event.get("device_id") != self.device_filter:
            return
        if await self._still_allowed():
            await self.send_json(event)


def _device_for(headers: list[tuple[bytes, bytes]]) -> Device | None:
    value = dict(headers).get(b"authorization", b"").decode(errors="replace").split()
    if len(value) != 2 or value[0] != "Device":
        return None
    return Device.for_token(value[1])


class MessageError(Exception):
    def __init__(self, detail: str, code: str = "bad_request") -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


def _frames(content: dict[str, Any], field: str = "frames", most: int = BURST_MAX_FRAMES) -> list[bytes]:
    items = content.get(field)
    if not isinstance(items, list) or not 1 <= len(items) <= most or not all(isinstance(i, str) for i in items):
        raise MessageError(f"{field} must be a list of 1 to {most} base64 JPEG strings.")
    try:
        return [base64.b64decode(item, validate=True) for item in items]
    except (binascii.Error, ValueError):
        raise MessageError(f"{field} holds something that is not base64.") from None


def _device_key(content: dict[str, Any]) -> str:
    key = content.get("key")
    if not isinstance(key, str) or not re.fullmatch(IDEMPOTENCY_KEY, key):
        raise MessageError("key must be 8-64 letters, digits, '-' or '_' (unique per captured event).")
    return key


def _captured_at(content: dict[str, Any]) -> dt.datetime | None:
    if content.get("captured_at") is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(content["captured_at"]).replace("Z", "+00:00"))
    except ValueError:
        raise MessageError("captured_at must be an ISO 8601 time with an offset.") from None


def _fps(content: dict[str, Any]) -> float:
    fps = content.get("fps", 12.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 1 <= fps <= 120:
        raise MessageError("fps must be a number from 1 to 120.")
    return float(fps)


def _check_in(device: Device, content: dict[str, Any]) -> dict[str, Any]:
    key = _device_key(content)
    captured_at = _captured_at(content)
    fps = _fps(content)
    try:
        answer = check_in_submit(frames=_frames(content), fps=fps, device=device, key=key, captured_at=captured_at)
        return check_in_answer_for(AnonymousUser(), answer, device=True)
    except CaptureTimeError as exc:
        raise MessageError(str(exc), code=exc.code) from None


def _dead_letter_report(content: dict[str, Any]) -> tuple[int | None, list[dict[str, str]] | None]:
    """A heartbeat's optional report of the device's dead letters: ``dead_letters`` (a count) and
    ``recent_dead_letters`` (a list of {key, captured_at, reason})."""
    count = content.get("dead_letters")
    if count is None:
        return None, None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
        raise MessageError("dead_letters must be a count (a whole number from 0).")
    recent = content.get("recent_dead_letters") or []
    if not isinstance(recent, list) or not all(isinstance(item, dict) for item in recent):
        raise MessageError("recent_dead_letters must be a list of {key, captured_at, reason}.")
    return count, recent


def _enrol(device: Device, content: dict[str, Any]) -> dict[str, Any]:
    from recognition.workers import enroll_with_code, enrolled_answer

    code = content.get("code")
    if not isinstance(code, str) or not code.strip():
        raise MessageError("code must be the enrolment code a manager issued.")
    photo = _frames(content, field="photos", most=1)[0]
    key = content.get("key") if isinstance(content.get("key"), str) else ""
    face = enroll_with_code(device_name=device.name, code=code.strip(), data=photo, key=key[:64])
    return enrolled_answer(face)


def _device_still_valid(device: Device) -> bool:
    """The device is still active and its token was not rotated since the socket opened."""
    return Device.objects.filter(pk=device.pk, token_hash=device.token_hash, is_active=True).exists()


def _device_message_refusal(device: Device, scope: dict[str, Any]) -> str | None:
    """Why a device's (non-frame) socket message is refused: "revoked", "throttled" (its REST and
    socket messages share one per-device rate), or None."""
    if not _device_still_valid(device):
        return "revoked"
    return None if socket_device_allowed(scope, device) else "throttled"


def _device_from_socket(scope: dict[str, Any]) -> tuple[Device | None, bool]:
    """The device whose token the handshake carries, and whether a wrong token was offered from
    an address already over the failed-token limit (counted as a wrong REST token is)."""
    device = _device_for(scope.get("headers", []))
    if device is None and any(name == b"authorization" for name, _ in scope.get("headers", [])):
        return None, socket_bad_token(scope)
    return device, False


@dataclass
class _OpenBurst:
    key: str
    burst: StreamedBurst
    captured_at: dt.datetime | None
    fps: float
    challenge: str | None
    last_frame: float


def _box(content: dict[str, Any]) -> list[float] | None:
    box = content.get("box")
    if box is None:
        return None
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
            or box[2] <= box[0] or box[3] <= box[1]):
        raise MessageError("box must be [x1, y1, x2, y2] in the frame's pixels, or null.")
    return [float(v) for v in box]


class BurstStreaming:
    """The streamed-burst messages (attendance.burst) of a consumer: ``burst_start``, ``frame``,
    ``burst_end``. The consumer says who is checking in (``_burst_device``: a Device or None),
    what key a stream has (``_burst_key``) and what its caller may see of an answer
    (``_burst_answer``)."""

    _open: _OpenBurst | None = None
    _idle: asyncio.Task | None = None

    def _burst_device(self) -> Device | None:
        raise NotImplementedError

    def _burst_key(self, content: dict[str, Any]) -> str:
        raise NotImplementedError

    def _burst_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def _burst_error(self, key: Any, code: str, detail: str) -> None:
        await self.send_json({"type": "error", "key": key, "code": code, "detail": detail})

    async def burst_message(self, kind: str, content: dict[str, Any]) -> None:
        """One burst message; typed errors for the caller are raised as MessageError."""
        if kind == "burst_start":
            await self._burst_start(content)
        elif kind == "frame":
            self._burst_frame(content)
        else:
            await self._burst_end(content)

    def _current(self, content: dict[str, Any], *, required: bool) -> _OpenBurst:
        if self._open is None:
            raise MessageError("No burst is open: send burst_start first.", code="burst_not_started")
        key = content.get("key")
        if (required or key is not None) and key != self._open.key:
            raise MessageError("This key is not the open burst's.", code="unknown_key")
        return self._open

    async def _burst_start(self, content: dict[str, Any]) -> None:
        if self._open is not None:
            raise MessageError("A burst is already open on this socket; end it first.", code="burst_open")
        key = self._burst_key(content)
        captured_at, fps = _captured_at(content), _fps(content)
        if captured_at is not None and self._burst_device() is None:
            raise MessageError(CAPTURED_AT_DEVICES_ONLY)
        try:
            _capture_time(captured_at)  # refused now, not after the whole burst was worked on
        except CaptureTimeError as exc:
            raise MessageError(str(exc), code=exc.code) from None
        challenge = content.get("challenge")
        if challenge is not None and (not isinstance(challenge, str) or len(challenge) > 300):
            raise MessageError("challenge must be the token from POST /api/v1/liveness/challenge.")
        device = self._burst_device()
        replay = device is not None and await database_sync_to_async(burst_answered)(device=device, key=key)
        loop = asyncio.get_running_loop()
        turning = bool(challenge) and settings.ROLLCALL_LIVENESS == "challenge"

        def failed(exc: Exception) -> None:  # from a worker thread
            code, detail = _error_of(exc)
            asyncio.run_coroutine_threadsafe(self._burst_error(key, code, detail), loop)

        self._open = _OpenBurst(key, StreamedBurst(fps=fps, turning=turning, on_error=failed, replay=replay),
                                captured_at, fps, challenge, loop.time())
        self._idle = asyncio.ensure_future(self._watch_idle(self._open))
        await self.send_json({"type": "burst_started", "key": key})

    def _burst_frame(self, content: dict[str, Any]) -> None:
        current = self._current(content, required=self._burst_device_keys)
        index, jpeg = content.get("index"), content.get("jpeg")
        if isinstance(index, bool) or not isinstance(index, int):
            raise MessageError("index must be the frame's number in the burst (0, 1, 2, ...).")
        if not isinstance(jpeg, str):
            raise MessageError("jpeg must be the frame as a base64 JPEG string.")
        box = _box(content)
        try:
            data = base64.b64decode(jpeg, validate=True)
        except (binascii.Error, ValueError):
            raise MessageError("jpeg is not base64.") from None
        try:
            current.burst.feed(index, data, box)
        except BurstError as exc:
            if exc.code == "too_many_frames":
                self._drop()
            raise MessageError(exc.detail, code=exc.code) from None
        current.last_frame = asyncio.get_running_loop().time()

    async def _burst_end(self, content: dict[str, Any]) -> None:
        current = self._current(content, required=self._burst_device_keys)
        frames = content.get("frames")
        if isinstance(frames, bool) or not isinstance(frames, int):
            raise MessageError("frames must be the number of frames sent.")
        self._open = None
        if self._idle is not None:
            self._idle.cancel()
        if current.burst.received == 0:  # nobody to check in: nothing is written, the monitor sees nothing
            current.burst.close()
            raise MessageError("No frame was sent: the burst was dropped and nothing was written.")
        device = self._burst_device()

        def finish() -> dict[str, Any]:
            def submit(results: list[dict], planned: list[int], count: int) -> dict[str, Any]:
                return burst_submit(results=results, planned=planned, fps=current.fps, device=device,
                                    key=current.key if device is not None and self._burst_device_keys else None,
                                    captured_at=current.captured_at, challenge=current.challenge)

            return self._burst_answer(current.burst.finish(frames, submit))

        try:
            answer = await database_sync_to_async(finish, thread_sensitive=False)()
        except Exception as exc:  # noqa: BLE001 - every failure is answered with its code
            code, detail = _error_of(exc)
            if code == "server_error":
                log.exception("burst %s failed", current.key)
            await self._burst_error(current.key, code, detail)
            return
        await self.send_json({"type": "decision", "key": current.key, "answer": answer})

    _burst_device_keys = True  # the stream's key comes from the sender (a device's idempotency key)

    def _drop(self) -> None:
        if self._open is not None:
            self._open.burst.close()
            self._open = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    async def _watch_idle(self, current: _OpenBurst) -> None:
        limit = settings.ROLLCALL_BURST_IDLE_SECONDS
        loop = asyncio.get_running_loop()
        while self._open is current:
            wait = current.last_frame + limit - loop.time()
            if wait <= 0:
                self._open, self._idle = None, None
                current.burst.close()
                await self._burst_error(current.key, "burst_timeout",
                                        f"No frame arrived for {limit:g} s; the burst was dropped.")
                return
            await asyncio.sleep(wait)


def _error_of(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, (MessageError, BurstError)):
        return exc.code, exc.detail
    if isinstance(exc, PipelineError):
        return exc.code, exc.detail
    if isinstance(exc, CaptureTimeError):
        return exc.code, str(exc)
    return "server_error", "The server failed to handle this message; it has been logged."


# Close codes: 4401 unknown or disabled token at connect, or (on /ws/kiosk/ and /ws/monitor/) a
# session that ended or lost its right; 4403 the device was deactivated, deleted or its token
# rotated while connected, or (on /ws/monitor/, at connect) a caller who is no manager.
CLOSE_NOT_ALLOWED = 4401
CLOSE_THROTTLED = 4429
CLOSE_DEVICE_REVOKED = 4403
CLOSE_NOT_A_MONITOR = 4403


class DeviceConsumer(JsonTextFrames, BurstStreaming, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.device, over_limit = await database_sync_to_async(_device_from_socket)(self.scope)
        if self.device is None:
            await self.close(code=CLOSE_THROTTLED if over_limit else CLOSE_NOT_ALLOWED)
            return
        await self.channel_layer.group_add(device_group(self.device.pk), self.channel_name)
        await self.accept()
        await database_sync_to_async(device_connected)(device=self.device)
        await self.send_json({"type": "hello", "device": self.device.name, "server_time": timezone.now().isoformat()})

    def _burst_device(self) -> Device | None:
        return self.device

    def _burst_key(self, content: dict[str, Any]) -> str:
        return _device_key(content)

    def _burst_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        return check_in_answer_for(AnonymousUser(), answer, device=True)

    async def disconnect(self, code: int) -> None:
        self._drop()
        if getattr(self, "device", None) is not None:
            await self.channel_layer.group_discard(device_group(self.device.pk), self.channel_name)
            await database_sync_to_async(device_gone)(device=self.device)

    async def device_disconnect(self, message: dict[str, Any]) -> None:
        """An admin deactivated or deleted this device or rotated its token (attendance.events)."""
        await self._revoke(message.get("reason", "deactivated"))

    async def _revoke(self, reason: str) -> None:
        await self.send_json({"type": "error", "key": None, "code": "device_revoked",
                              "detail": f"This device's access was revoked ({reason}); reconnect with a valid token."})
        await self.close(code=CLOSE_DEVICE_REVOKED)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        key = content.get("key") if isinstance(content, dict) else None
        # A streamed frame is not checked against the database or counted (12 a second, at most
        # BURST_MAX_FRAMES a burst); its burst_start and burst_end are, and a revoked device is
        # closed by its group's message anyway.
        refusal = None if kind == "frame" else await database_sync_to_async(_device_message_refusal)(
            self.device, self.scope)
        if refusal == "revoked":
            await self._revoke("inactive")
            return
        if refusal == "throttled":
            await self.send_json({"type": "error", "key": key, "code": "throttled",
                                  "detail": "Too many messages from this device; try again shortly."})
            return
        try:
            if kind in ("burst_start", "frame", "burst_end"):
                await self.burst_message(kind, content)
            elif kind == "heartbeat":
                count, recent = _dead_letter_report(content)
                await database_sync_to_async(device_heartbeat)(device=self.device, dead_letters=count, recent=recent)
                await self.send_json({"type": "heartbeat", "server_time": timezone.now().isoformat()})
            elif kind == "check_in":
                # A check-in takes a second or two: run it off the shared sync thread.
                answer = await database_sync_to_async(_check_in, thread_sensitive=False)(self.device, content)
                await self.send_json({"type": "decision", "key": key, "answer": answer})
            elif kind == "enrol":
                answer = await database_sync_to_async(_enrol, thread_sensitive=False)(self.device, content)
                await self.send_json({"type": "enrolled", "key": key, "answer": answer})
            elif kind == "preview":
                image = content.get("image")
                if not isinstance(image, str) or len(image) > MAX_PREVIEW_BYTES * 4 // 3:
                    raise MessageError(f"image must be a base64 JPEG under {MAX_PREVIEW_BYTES // 1024} KB.")
                faces = content.get("faces") if isinstance(content.get("faces"), list) else []
                await database_sync_to_async(preview_published)(self.device, jpeg_base64=image, faces=faces[:20])
            else:
                raise MessageError("type must be heartbeat, check_in, burst_start, frame, burst_end, enrol or preview.",
                                   code="unknown_message")
        except MessageError as exc:
            await self.send_json({"type": "error", "key": key, "code": exc.code, "detail": exc.detail})
        except PipelineError as exc:
            await self.send_json({"type": "error", "key": key, "code": exc.code, "detail": exc.detail})
        except Exception:
            # A fault of ours: the device is told (it retries with backoff, then parks the event in
            # its dead-letter table) and the connection stays up for the events behind it.
            log.exception("device %s: %s message failed", self.device.name, kind)
            await self.send_json({"type": "error", "key": key, "code": "server_error",
                                  "detail": "The server failed to handle this message; it has been logged."})


def _kiosk_session(user: Any) -> Any:
    return user if user is not None and may_use_kiosk_page(user) else None


class KioskConsumer(JsonTextFrames, BurstStreaming, AsyncJsonWebsocketConsumer):
    """The kiosk page's streamed check-in (see the module docstring)."""

    _burst_device_keys = False

    async def connect(self) -> None:
        self.actor = await database_sync_to_async(_kiosk_session)(self.scope.get("user"))
        self.device = None
        if self.actor is None:
            self.device, over_limit = await database_sync_to_async(_device_from_socket)(self.scope)
            if over_limit:
                await self.close(code=CLOSE_THROTTLED)
                return
        await self.accept()

    async def disconnect(self, code: int) -> None:
        self._drop()

    def _burst_device(self) -> Device | None:
        return self.device

    def _burst_key(self, content: dict[str, Any]) -> str:
        return uuid.uuid4().hex

    def _burst_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        if self.device is not None:
            return check_in_answer_for(AnonymousUser(), answer, device=True)
        return check_in_answer_for(self.actor, answer, device=False)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        key = content.get("key") if isinstance(content, dict) else None
        try:
            if kind == "auth":
                if self._open is not None:
                    raise MessageError("A burst is open: end it before authorising again.", code="burst_open")
                token = content.get("token")
                valid = isinstance(token, str) and token
                device = await database_sync_to_async(Device.for_token)(token) if valid else None
                if device is None:
                    if await database_sync_to_async(socket_bad_token)(self.scope):
                        await self._burst_error(None, "throttled", "Too many failed token attempts from this address.")
                        await self.close(code=CLOSE_THROTTLED)
                        return
                    await self._burst_error(None, "not_allowed", "This device token is not valid.")
                    await self.close(code=CLOSE_NOT_ALLOWED)
                    return
                self.device, self.actor = device, None
                await self.send_json({"type": "authorised", "device": device.name})
            elif self.actor is None and self.device is None:
                raise MessageError("Log in as a manager on this kiosk or send {\"type\": \"auth\", \"token\": ...} "
                                   "with a device token first.", code="not_allowed")
            elif kind in ("burst_start", "frame", "burst_end"):
                revoked = self.device is not None and kind != "frame" and not await database_sync_to_async(
                    _device_still_valid)(self.device)
                if revoked:
                    await self._burst_error(key, "not_allowed", "This device's access was revoked.")
                    await self.close(code=CLOSE_DEVICE_REVOKED)
                    return
                session = self.scope.get("session")
                ended = self.actor is not None and kind != "frame" and not await database_sync_to_async(
                    kiosk_session_still_valid)(getattr(session, "session_key", None), self.actor.pk)
                if ended:
                    self._drop()
                    await self._burst_error(key, "not_allowed", "This kiosk's session has ended: log in again.")
                    await self.close(code=CLOSE_NOT_ALLOWED)
                    return
                await self.burst_message(kind, content)
            else:
                raise MessageError("type must be auth, burst_start, frame or burst_end.", code="unknown_message")
        except MessageError as exc:
            await self._burst_error(key, exc.code, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a typed answer, never a dead socket (as on /ws/device/)
            code, detail = _error_of(exc)
            if code == "server_error":
                log.exception("kiosk socket message %s failed", kind)
            await self._burst_error(key, code, detail)
