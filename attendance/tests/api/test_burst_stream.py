"""A burst decided frame by frame (attendance.burst): on a real blinking person, tracking decides
as detection on every frame does; streamed over the device and kiosk sockets, the decision is the
REST path's; protocol errors are typed and write nothing; a streamed key is answered once."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, RecognitionLog
from conftest import video_frames
from portal.asgi import application
from portal.models import Employee
from portal.services import device_create
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
WAIT = 120  # seconds a decision may take on a loaded 2-core machine


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


@pytest.fixture(scope="module")
def burst() -> list[bytes]:
    """24 frames at 12 fps (2 s) of one real person who blinks at frames 5-6."""
    return [_jpeg(frame) for frame in video_frames(FIXTURES / "blink_2s.mp4", rgb=True)[0:48:2]]


@pytest.fixture()
def sam(burst: list[bytes]) -> Employee:
    person = Employee.objects.create(code="S", full_name="Sam Selfie")
    face_enroll(employee=person, data=burst[0])
    return person


def _socket(path: str, *, token: str | None = None, session: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if token:
        headers.append((b"authorization", f"Device {token}".encode()))
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def _stream(socket: WebsocketCommunicator, frames: list[bytes], key: str | None = None,
                  **start: object) -> dict:
    await socket.send_json_to({"type": "burst_start", "key": key, "fps": 12, **start})
    started = await socket.receive_json_from(timeout=WAIT)
    assert started["type"] == "burst_started", started
    key = started["key"]
    for index, frame in enumerate(frames):
        await socket.send_json_to({"type": "frame", "key": key, "index": index,
                                   "jpeg": base64.b64encode(frame).decode()})
        await asyncio.sleep(0.01)
    await socket.send_json_to({"type": "burst_end", "key": key, "frames": len(frames)})
    return await socket.receive_json_from(timeout=WAIT)


def test_tracking_decides_as_detection_on_every_frame_and_streaming_as_rest(sam: Employee, burst: list[bytes],
                                                                           settings) -> None:
    from attendance.burst import BurstStream, analyse_frame, look_at_images
    from recognition.engine import get_liveness_checker, get_pipeline, match_threshold
    from recognition.selectors import gallery_index
    from recognition.services import decode_upload

    settings.ROLLCALL_LIVENESS = "blink"
    images = [decode_upload(frame) for frame in burst]
    # The reference: MTCNN on five spread frames for the views, and on every frame for liveness.
    pipeline = get_pipeline()
    picks = [round(i * (len(images) - 1) / 4) for i in range(5)]
    faces = [(images[i], max(pipeline.detector.detect(images[i]), key=lambda f: f.width * f.height)) for i in picks]
    reference = gallery_index().decide_burst(pipeline.embedder.embed_pairs(faces), threshold=match_threshold())
    assert reference.known and reference.best.label == sam.pk
    assert get_liveness_checker().check(images, 12).reason == "ok"

    rest = look_at_images(images, 12)
    assert rest.outcome is None and rest.employee == sam and rest.liveness == "ok"
    assert abs(rest.similarity - reference.best.score) < 0.03
    assert rest.thumbnail and rest.learn is not None and rest.learn.crop is not None

    stream = BurstStream(12)  # as the sockets do: the burst's length is not known in advance
    for index, frame in enumerate(burst):
        hint, embed = stream.plan(index)
        stream.add(analyse_frame(frame, index=index, hint=hint, embed=embed))
    detected = [i for i, r in stream.results.items() if r["detected"]]
    assert detected == [0], "one detection, then the face is tracked"
    for index in stream.pending():
        stream.add(analyse_frame(burst[index], index=index, hint=stream.results[index]["track"], embed=True))
    streamed = stream.decide()
    assert streamed.outcome is None and streamed.employee == sam and streamed.liveness == "ok"
    assert abs(streamed.similarity - rest.similarity) < 0.03
    assert len(stream.views()) == 5 and streamed.learn is not None
    assert streamed.learn.crop.shape == rest.learn.crop.shape


def test_a_device_streams_a_burst_and_a_replayed_key_is_answered_once(sam: Employee, burst: list[bytes],
                                                                       settings) -> None:
    settings.ROLLCALL_LIVENESS = "blink"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 0
    _, token = device_create(name="Door")

    async def scenario() -> tuple[dict, dict]:
        socket = _socket("/ws/device/", token=token)
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "hello"
        at = timezone.now().isoformat()
        first = await _stream(socket, burst, key="burst-key-0001", captured_at=at)
        again = await _stream(socket, burst[:3], key="burst-key-0001", captured_at=at)  # a retry after a lost answer
        await socket.disconnect()
        return first, again

    first, again = async_to_sync(scenario)()
    assert first["type"] == "decision" and first["key"] == "burst-key-0001"
    answer = first["answer"]
    assert answer["outcome"] == "checked_in" and answer["employee"] == "Sam Selfie" and answer["liveness"] == "ok"
    assert again == first
    assert RecognitionLog.objects.count() == 1 and AttendanceEvent.objects.count() == 1
    assert RecognitionLog.objects.get().source == "device:Door"
    # The same frames through the REST path: the same person, live (the next event is a check-out).
    door = APIClient()
    door.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    files = []
    for frame in burst:
        handle = io.BytesIO(frame)
        handle.name = "frame.jpg"
        files.append(handle)
    rest = door.post("/api/v1/check-ins", {"frames": files, "fps": 12}, format="multipart").json()
    assert rest["outcome"] == "checked_out" and rest["employee"] == "Sam Selfie" and rest["liveness"] == "ok"
    assert abs(rest["similarity"] - answer["similarity"]) < 0.03


def test_protocol_errors_are_typed_and_write_nothing(burst: list[bytes], settings, monkeypatch) -> None:
    import attendance.burst

    _, token = device_create(name="Door")
    frame = base64.b64encode(burst[0]).decode()

    async def scenario() -> list[dict]:
        socket = _socket("/ws/device/", token=token)
        assert (await socket.connect())[0]
        await socket.receive_json_from()
        answers = []

        async def send(message: dict) -> None:
            await socket.send_json_to(message)
            answers.append(await socket.receive_json_from(timeout=WAIT))

        await send({"type": "frame", "key": "burst-key-0002", "index": 0, "jpeg": frame})  # before burst_start
        await send({"type": "burst_end", "key": "burst-key-0002", "frames": 0})
        await send({"type": "burst_start", "key": "bad key!"})
        await send({"type": "burst_start", "key": "burst-key-0002", "fps": 12})
        await send({"type": "burst_start", "key": "burst-key-0003", "fps": 12})  # one open stream per socket
        await send({"type": "frame", "key": "burst-key-0003", "index": 0, "jpeg": frame})  # not the open key
        await send({"type": "frame", "key": "burst-key-0002", "index": 0, "jpeg": "not base64!"})
        await send({"type": "frame", "key": "burst-key-0002", "index": 3, "jpeg": frame})  # out of order
        await send({"type": "frame", "key": "burst-key-0002", "index": 0, "box": [5, 5, 1, 1], "jpeg": frame})
        # Not a JPEG: the error comes as soon as the frame is worked on, and again at burst_end.
        await send({"type": "frame", "key": "burst-key-0002", "index": 0, "jpeg": base64.b64encode(b"hello").decode()})
        await socket.send_json_to({"type": "frame", "key": "burst-key-0002", "index": 1, "jpeg": frame})  # ignored
        await send({"type": "burst_end", "key": "burst-key-0002", "frames": 2})
        # Too many frames drops the stream.
        monkeypatch.setattr(attendance.burst, "BURST_MAX_FRAMES", 2)
        await send({"type": "burst_start", "key": "burst-key-0004", "fps": 12})
        for index in range(2):
            await socket.send_json_to({"type": "frame", "key": "burst-key-0004", "index": index, "jpeg": frame})
        await send({"type": "frame", "key": "burst-key-0004", "index": 2, "jpeg": frame})
        await send({"type": "burst_end", "key": "burst-key-0004", "frames": 3})
        # A box that is not finite numbers; a burst_end with no frame drops the stream and writes nothing.
        await send({"type": "burst_start", "key": "burst-key-0006", "fps": 12})
        await send({"type": "frame", "key": "burst-key-0006", "index": 0, "jpeg": frame,
                    "box": [float("nan"), 0, float("inf"), 10]})
        await send({"type": "burst_end", "key": "burst-key-0006", "frames": 0})
        await send({"type": "burst_end", "key": "burst-key-0006", "frames": 0})
        # A stream that goes quiet is dropped.
        settings.ROLLCALL_BURST_IDLE_SECONDS = 0.5
        await send({"type": "burst_start", "key": "burst-key-0005", "fps": 12})
        answers.append(await socket.receive_json_from(timeout=WAIT))
        await send({"type": "burst_end", "key": "burst-key-0005", "frames": 0})
        await socket.disconnect()
        return answers

    answers = async_to_sync(scenario)()
    codes = [(a["type"], a.get("code")) for a in answers]
    assert codes == [
        ("error", "burst_not_started"), ("error", "burst_not_started"), ("error", "bad_request"),
        ("burst_started", None), ("error", "burst_open"), ("error", "unknown_key"), ("error", "bad_request"),
        ("error", "bad_request"), ("error", "bad_request"), ("error", "invalid_image"), ("error", "invalid_image"),
        ("burst_started", None), ("error", "too_many_frames"), ("error", "burst_not_started"),
        ("burst_started", None), ("error", "bad_request"), ("error", "bad_request"), ("error", "burst_not_started"),
        ("burst_started", None), ("error", "burst_timeout"), ("error", "burst_not_started")], codes
    assert all(a["key"] == "burst-key-0002" for a in answers[9:11])
    assert RecognitionLog.objects.count() == 0 and AttendanceEvent.objects.count() == 0


def test_the_kiosk_socket_is_for_managers_and_device_tokens(sam: Employee, burst: list[bytes], settings) -> None:
    settings.ROLLCALL_LIVENESS = "blink"
    manager = User.objects.create_user("boss", password="pw-boss-123")
    Employee.objects.create(user=manager, code="M", full_name="Mona Manager", role="manager")
    worker = User.objects.create_user("worker", password="pw-worker-123")
    Employee.objects.create(user=worker, code="W", full_name="Walt Worker")
    sessions = {}
    for user in (manager, worker):
        browser = Client()
        browser.force_login(user)
        sessions[user.username] = browser.cookies["sessionid"].value
    _, token = device_create(name="Lobby kiosk")

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        for name, socket in (("anonymous", _socket("/ws/kiosk/")),
                             ("worker", _socket("/ws/kiosk/", session=sessions["worker"]))):
            assert (await socket.connect())[0]
            await socket.send_json_to({"type": "burst_start", "fps": 12})
            seen[name] = await socket.receive_json_from(timeout=WAIT)
            await socket.disconnect()
        socket = _socket("/ws/kiosk/")
        await socket.connect()
        await socket.send_json_to({"type": "auth", "token": "not-a-token"})
        seen["bad token"] = await socket.receive_json_from(timeout=WAIT)
        seen["bad token closes"] = await socket.receive_output(timeout=WAIT)
        socket = _socket("/ws/kiosk/", session=sessions["boss"])
        await socket.connect()
        seen["manager"] = await _stream(socket, burst)
        # A kiosk is timed by the portal's clock: a manager's session cannot backdate a check-in.
        await socket.send_json_to({"type": "burst_start", "fps": 12, "captured_at": "2026-01-05T08:00:00+00:00"})
        seen["manager backdates"] = await socket.receive_json_from(timeout=WAIT)
        await socket.disconnect()
        socket = _socket("/ws/kiosk/")
        await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token})
        seen["auth"] = await socket.receive_json_from(timeout=WAIT)
        seen["device"] = await _stream(socket, burst)
        await socket.disconnect()
        return seen

    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 0
    seen = async_to_sync(scenario)()
    assert seen["anonymous"]["code"] == seen["worker"]["code"] == "not_allowed"
    assert seen["bad token"]["code"] == "not_allowed" and seen["bad token closes"]["type"] == "websocket.close"
    manager_answer = seen["manager"]
    assert manager_answer["type"] == "decision" and len(manager_answer["key"]) == 32
    assert manager_answer["answer"]["outcome"] == "checked_in" and manager_answer["answer"]["employee"] == "Sam Selfie"
    assert seen["manager backdates"]["code"] == "bad_request" and "clock" in seen["manager backdates"]["detail"]
    rest = Client()
    rest.force_login(manager)
    backdated = rest.post("/api/v1/check-ins", {"frames": [SimpleUploadedFile("f.jpg", burst[0], "image/jpeg")],
                                                "captured_at": "2026-01-05T08:00:00+00:00"})
    assert backdated.status_code == 400 and "captured_at" in backdated.json()["detail"], backdated.content
    assert seen["auth"] == {"type": "authorised", "device": "Lobby kiosk"}
    assert seen["device"]["answer"]["outcome"] == "checked_out"
    sources = sorted(RecognitionLog.objects.values_list("source", flat=True))
    assert sources == ["device:Lobby kiosk", "kiosk"] and AttendanceEvent.objects.count() == 2


def test_a_kiosk_whose_manager_signed_out_or_lost_the_role_stops_streaming(sam: Employee, burst: list[bytes],
                                                                       settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    manager = User.objects.create_user("boss", password="pw-boss-123")
    mona = Employee.objects.create(user=manager, code="M", full_name="Mona Manager", role="manager")
    browsers = {}
    for name in ("signs out", "demoted"):
        browsers[name] = Client()
        browsers[name].force_login(manager)

    async def opened(name: str) -> WebsocketCommunicator:
        socket = _socket("/ws/kiosk/", session=browsers[name].cookies["sessionid"].value)
        assert (await socket.connect())[0]
        return socket

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        signs_out, demoted = await opened("signs out"), await opened("demoted")
        await signs_out.send_json_to({"type": "burst_start", "fps": 12})
        started = await signs_out.receive_json_from(timeout=WAIT)
        assert started["type"] == "burst_started", started
        frame = base64.b64encode(burst[0]).decode()
        await signs_out.send_json_to({"type": "frame", "key": started["key"], "index": 0, "jpeg": frame})
        await database_sync_to_async(browsers["signs out"].logout)()  # the kiosk's manager signs out mid-burst
        await signs_out.send_json_to({"type": "burst_end", "key": started["key"], "frames": 1})
        seen["signed out"] = await signs_out.receive_json_from(timeout=WAIT)
        seen["signed out closes"] = await signs_out.receive_output(timeout=WAIT)
        await database_sync_to_async(Employee.objects.filter(pk=mona.pk).update)(role="employee")
        await demoted.send_json_to({"type": "burst_start", "fps": 12})
        seen["demoted"] = await demoted.receive_json_from(timeout=WAIT)
        seen["demoted closes"] = await demoted.receive_output(timeout=WAIT)
        for socket in (signs_out, demoted):
            await socket.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    for name in ("signed out", "demoted"):
        assert seen[name]["code"] == "not_allowed" and "session has ended" in seen[name]["detail"], seen[name]
        assert seen[f"{name} closes"] == {"type": "websocket.close", "code": 4401}, seen[f"{name} closes"]
    assert RecognitionLog.objects.count() == 0 and AttendanceEvent.objects.count() == 0
