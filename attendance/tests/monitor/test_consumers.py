"""The live monitor and device websockets, driven with Channels' WebsocketCommunicator on real
face photos (in-memory channel layer, the embedded default)."""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from attendance.consumers import MonitorConsumer
from attendance.events import recognition_published
from attendance.models import AttendanceEvent, RecognitionLog
from portal.asgi import application
from portal.models import Department, Employee
from portal.services import device_create
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _user(username: str, role: str = "employee", department: Department | None = None) -> User:
    user = User.objects.create_user(username)
    Employee.objects.create(user=user, code=username, full_name=username.title(), role=role, department=department)
    return user


async def _monitor(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(MonitorConsumer.as_asgi(), "/ws/monitor/")
    communicator.scope["user"] = user
    return communicator


def _device_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/device/", headers=[
        (b"authorization", f"Device {token}".encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")])


def test_only_managers_and_admins_may_open_the_monitor() -> None:
    employee, manager, admin = _user("ana"), _user("boss", "manager"), _user("root", "admin")

    async def scenario() -> None:
        for user, allowed in ((AnonymousUser(), False), (employee, False), (manager, True), (admin, True)):
            communicator = await _monitor(user)
            connected, code = await communicator.connect()
            assert connected is allowed, user
            if not allowed:
                assert code == 4403
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_events_arrive_after_commit_and_never_for_rolled_back_work() -> None:
    manager = _user("boss", "manager")

    async def scenario() -> None:
        communicator = await _monitor(manager)
        assert (await communicator.connect())[0]
        inside, may_commit = threading.Event(), threading.Event()

        def write(fail: bool) -> int:
            with transaction.atomic():
                entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="unknown", message="Not recognised.")
                recognition_published(entry)
                inside.set()
                may_commit.wait(10)
                if fail:
                    raise RuntimeError("rolled back")
            return entry.pk

        committed = asyncio.ensure_future(database_sync_to_async(write, thread_sensitive=False)(False))
        await asyncio.to_thread(inside.wait, 10)
        assert await communicator.receive_nothing(timeout=0.5), "an event left before its transaction committed"
        may_commit.set()
        pk = await committed
        event = await communicator.receive_json_from(timeout=5)
        assert event["kind"] == "recognition" and event["id"] == pk and event["outcome"] == "unknown"

        inside.clear()
        may_commit.set()
        with pytest.raises(RuntimeError):
            await database_sync_to_async(write, thread_sensitive=False)(True)
        assert await communicator.receive_nothing(timeout=0.5), "a rolled-back recognition was announced"
        assert not await database_sync_to_async(RecognitionLog.objects.filter(pk__gt=pk).exists)()
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_managers_see_their_department_and_unknown_faces_admins_see_all() -> None:
    sales, lab = Department.objects.create(name="Sales"), Department.objects.create(name="Lab")
    manager, admin = _user("boss", "manager", sales), _user("root", "admin")
    seller = Employee.objects.create(code="S1", full_name="Sam Seller", department=sales)
    chemist = Employee.objects.create(code="L1", full_name="Lee Lab", department=lab)

    def publish(employee: Employee | None) -> None:
        with transaction.atomic():
            entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="checked_in" if employee else "unknown",
                                                  employee=employee)
            recognition_published(entry)

    async def scenario() -> None:
        boss, root = await _monitor(manager), await _monitor(admin)
        assert (await boss.connect())[0] and (await root.connect())[0]
        for employee in (chemist, seller, None):
            await database_sync_to_async(publish)(employee)
        seen_by_boss = [(await boss.receive_json_from(timeout=5))["employee"] for _ in range(2)]
        assert seen_by_boss == ["Sam Seller", None] and await boss.receive_nothing(timeout=0.3)
        seen_by_root = [(await root.receive_json_from(timeout=5))["employee"] for _ in range(3)]
        assert seen_by_root == ["Lee Lab", "Sam Seller", None]
        await boss.disconnect()
        await root.disconnect()

    async_to_sync(scenario)()


def _frame_b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_device_socket_refuses_bad_tokens_and_bad_messages() -> None:
    device, token = device_create(name="Front door")

    async def scenario() -> None:
        for bad in ("nope", token + "x"):
            communicator = _device_socket(bad)
            connected, code = await communicator.connect()
            assert not connected and code == 4401
        communicator = _device_socket(token)
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        await communicator.send_json_to({"type": "launch"})
        assert (await communicator.receive_json_from(timeout=5))["code"] == "unknown_message"
        await communicator.send_json_to({"type": "check_in", "key": "k", "frames": ["x"]})
        reply = await communicator.receive_json_from(timeout=5)
        assert reply["type"] == "error" and "key" in reply["detail"]
        await communicator.send_json_to({"type": "check_in", "key": "abcdefgh-1", "frames": ["%%%"]})
        assert "base64" in (await communicator.receive_json_from(timeout=5))["detail"]
        await communicator.send_json_to({"type": "check_in", "key": "abcdefgh-2",
                                         "frames": [base64.b64encode(b"not a picture").decode()]})
        assert (await communicator.receive_json_from(timeout=30))["code"] == "invalid_image"
        await communicator.disconnect()

    async_to_sync(scenario)()
    assert RecognitionLog.objects.count() == 0, "a refused check-in must not leave a claim behind"


def test_a_device_check_in_is_answered_once_per_key_and_shown_live(people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    team = Department.objects.create(name="Team")
    manager = _user("boss", "manager", team)
    ana = Employee.objects.create(code="A", full_name="Ana Example", department=team)
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    device, token = device_create(name="Front door")
    frames = [_frame_b64(people["joe_biden"][1])] * 3
    message = {"type": "check_in", "key": "visit-0001", "captured_at": timezone.now().isoformat(), "fps": 12, "frames": frames}

    async def scenario() -> None:
        monitor = await _monitor(manager)
        assert (await monitor.connect())[0]
        door = _device_socket(token)
        assert (await door.connect())[0]
        await door.receive_json_from(timeout=5)  # hello
        status = await monitor.receive_json_from(timeout=5)
        assert status == {**status, "kind": "device", "device_id": device.pk, "online": True}
        await door.send_json_to(message)
        first = await door.receive_json_from(timeout=60)
        assert first["type"] == "decision" and first["key"] == "visit-0001"
        assert first["answer"]["outcome"] == "checked_in" and first["answer"]["employee"] == "Ana Example"
        seen = await monitor.receive_json_from(timeout=5)
        assert seen["kind"] == "recognition" and seen["employee"] == "Ana Example" and seen["device"] == "Front door"
        assert seen["thumbnail"].endswith(".jpg")
        # The device did not hear the answer and sends the same event again: same answer, nothing new.
        await door.send_json_to(message)
        again = await door.receive_json_from(timeout=60)
        assert again == first
        assert await monitor.receive_nothing(timeout=0.5)
        await door.send_json_to({"type": "heartbeat"})
        assert (await door.receive_json_from(timeout=5))["type"] == "heartbeat"
        await door.disconnect()
        gone = await monitor.receive_json_from(timeout=5)
        assert gone["kind"] == "device" and gone["online"] is False
        await monitor.disconnect()

    async_to_sync(scenario)()
    assert AttendanceEvent.objects.count() == 1 and RecognitionLog.objects.count() == 1
    entry = RecognitionLog.objects.get()
    assert entry.key == "visit-0001" and entry.device == device and entry.state == "done" and entry.thumbnail


@pytest.mark.parametrize("camera_view", ["admins", "managers"])
def test_device_filter_and_preview_frames_reach_only_watchers_allowed_the_camera_view(camera_view, settings) -> None:
    settings.ROLLCALL_CAMERA_VIEW = camera_view
    granted = camera_view == "managers"
    manager, admin = _user("boss", "manager"), _user("root", "admin")
    door, door_token = device_create(name="Front door")
    back, _ = device_create(name="Back door")

    def publish(device) -> None:
        with transaction.atomic():
            recognition_published(RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="unknown", device=device))

    async def scenario() -> None:
        watcher, asker, everyone = await _monitor(admin), await _monitor(manager), await _monitor(manager)
        assert (await watcher.connect())[0] and (await asker.connect())[0] and (await everyone.connect())[0]
        await watcher.send_json_to({"type": "watch", "device": door.pk, "preview": True})
        assert (await watcher.receive_json_from(timeout=5)) == {"kind": "watching", "device": door.pk, "preview": True}
        # A manager's camera view is granted only where the site opened it to managers.
        await asker.send_json_to({"type": "watch", "device": door.pk, "preview": True})
        assert (await asker.receive_json_from(timeout=5)) == {"kind": "watching", "device": door.pk, "preview": granted}
        await database_sync_to_async(publish)(back)
        await database_sync_to_async(publish)(door)
        assert (await watcher.receive_json_from(timeout=5))["device_id"] == door.pk
        assert (await asker.receive_json_from(timeout=5))["device_id"] == door.pk
        assert [(await everyone.receive_json_from(timeout=5))["device_id"] for _ in range(2)] == [back.pk, door.pk]
        device = _device_socket(door_token)
        assert (await device.connect())[0]
        await device.receive_json_from(timeout=5)
        for communicator in (watcher, asker, everyone):
            assert (await communicator.receive_json_from(timeout=5))["kind"] == "device"
        await device.send_json_to({"type": "preview", "image": base64.b64encode(b"\xff\xd8jpeg").decode(),
                                   "faces": [{"box": [1, 2, 3, 4]}]})
        preview = await watcher.receive_json_from(timeout=5)
        assert preview["kind"] == "preview" and preview["device_id"] == door.pk and preview["faces"] == [{"box": [1, 2, 3, 4]}]
        if granted:
            assert (await asker.receive_json_from(timeout=5))["kind"] == "preview"
        else:
            assert await asker.receive_nothing(timeout=0.3)
        assert await everyone.receive_nothing(timeout=0.3)
        for communicator in (device, watcher, asker, everyone):
            await communicator.disconnect()

    async_to_sync(scenario)()
    # The page offers the camera view only to those the socket grants it.
    for user, offered in ((admin, True), (manager, granted)):
        page = Client()
        page.force_login(user)
        assert ('id="preview"' in page.get("/monitor/").content.decode()) is offered


def test_device_socket_answers_non_json_and_binary_frames_and_stays_open() -> None:
    _, token = device_create(name="Side door")

    async def scenario() -> None:
        communicator = _device_socket(token)
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        for frame in ({"text_data": "{not json"}, {"text_data": "[1, 2"}, {"bytes_data": b"\x00\x01binary"},
                      {"text_data": "[" * 5000 + "]" * 5000}):
            await communicator.send_to(**frame)
            reply = await communicator.receive_json_from(timeout=5)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (frame, reply)
        await communicator.send_json_to({"type": "heartbeat"})  # still connected, still served
        assert (await communicator.receive_json_from(timeout=5))["type"] == "heartbeat"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_sockets_count_wrong_tokens_and_a_devices_messages_like_rest(settings) -> None:
    """Wrong tokens on /ws/device/ and /ws/kiosk/ count towards the same per-address limit as wrong
    REST tokens (then the handshake closes 4429); a device's socket messages share its REST rate
    (then "throttled", and the socket stays up). A valid token always connects."""
    settings.ROLLCALL_THROTTLE_RATES = {**settings.ROLLCALL_THROTTLE_RATES, "bad_credentials": "3/minute",
                                        "device": "2/minute"}
    _, token = device_create(name="Side door")

    async def closed_with(communicator) -> int | None:
        connected, code = await communicator.connect()
        if not connected:
            return code
        await communicator.send_json_to({"type": "auth", "token": "a-guess"})
        reply = await communicator.receive_json_from(timeout=5)
        output = await communicator.receive_output(timeout=5)
        assert output["type"] == "websocket.close"
        return {"not_allowed": 4401, "throttled": 4429}[reply["code"]]

    async def scenario() -> None:
        codes = [await closed_with(_device_socket("wrong-token")) for _ in range(2)]
        kiosk = WebsocketCommunicator(application, "/ws/kiosk/", headers=[(b"origin", b"http://localhost"),
                                                                           (b"host", b"localhost")])
        codes.append(await closed_with(kiosk))
        codes.append(await closed_with(_device_socket("wrong-token")))
        assert codes == [4401, 4401, 4401, 4429], codes
        device = _device_socket(token)
        assert (await device.connect())[0]
        assert (await device.receive_json_from(timeout=5))["type"] == "hello"
        replies = []
        for _ in range(3):
            await device.send_json_to({"type": "heartbeat"})
            replies.append(await device.receive_json_from(timeout=5))
        assert [r["type"] for r in replies] == ["heartbeat", "heartbeat", "error"] and replies[2]["code"] == "throttled"
        second = _device_socket(token)  # another socket of the same device shares the budget
        assert (await second.connect())[0]
        await second.receive_json_from(timeout=5)
        await second.send_json_to({"type": "heartbeat"})
        assert (await second.receive_json_from(timeout=5))["code"] == "throttled"
        await device.disconnect()
        await second.disconnect()

    async_to_sync(scenario)()


def test_the_monitor_socket_answers_bad_frames_and_stays_open() -> None:
    manager = _user("boss", "manager")

    async def scenario() -> None:
        communicator = await _monitor(manager)
        assert (await communicator.connect())[0]
        for frame in ({"text_data": "{not json"}, {"bytes_data": b"\x00binary"}, {"text_data": "[" * 5000 + "]" * 5000}):
            await communicator.send_to(**frame)
            reply = await communicator.receive_json_from(timeout=5)
            assert reply["kind"] == "error" and reply["code"] == "bad_request", (frame, reply)
        await communicator.send_json_to({"type": "watch", "device": None})
        assert (await communicator.receive_json_from(timeout=5))["kind"] == "watching"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_monitor_whose_manager_signed_out_or_lost_the_right_stops_receiving(settings) -> None:
    """Each of three managers' sockets loses its right a different way; the next event is not
    sent to it: it hears not_allowed and closes (4401). An unchanged manager keeps receiving."""
    from django.test import Client

    settings.ROLLCALL_MONITOR_RECHECK_SECONDS = 0
    sales, lab = Department.objects.create(name="Sales"), Department.objects.create(name="Lab")
    managers = {name: _user(name, "manager", sales) for name in ("signs_out", "demoted", "moved", "stays")}
    browsers = {}
    for name, user in managers.items():
        browsers[name] = Client()
        browsers[name].force_login(user)
    seller = Employee.objects.create(code="S1", full_name="Sam Seller", department=sales)

    def publish() -> None:
        with transaction.atomic():
            entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="checked_in", employee=seller)
            recognition_published(entry)

    async def scenario() -> dict[str, list]:
        sockets = {}
        for name in managers:
            sockets[name] = WebsocketCommunicator(application, "/ws/monitor/", headers=[
                (b"origin", b"http://localhost"), (b"host", b"localhost"),
                (b"cookie", f"sessionid={browsers[name].cookies['sessionid'].value}".encode())])
            assert (await sockets[name].connect())[0], name
        await database_sync_to_async(publish)()
        for name, socket in sockets.items():
            assert (await socket.receive_json_from(timeout=5))["employee"] == "Sam Seller", name
        await database_sync_to_async(browsers["signs_out"].logout)()
        await database_sync_to_async(Employee.objects.filter(user=managers["demoted"]).update)(role="employee")
        await database_sync_to_async(Employee.objects.filter(user=managers["moved"]).update)(department=lab)
        await database_sync_to_async(publish)()
        seen = {}
        for name, socket in sockets.items():
            seen[name] = [await socket.receive_output(timeout=5)]
            if name != "stays":
                seen[name].append(await socket.receive_output(timeout=5))
            await socket.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    import json

    assert json.loads(seen["stays"][0]["text"])["employee"] == "Sam Seller"
    for name in ("signs_out", "demoted", "moved"):
        refused, closed = seen[name]
        assert json.loads(refused["text"])["code"] == "not_allowed", (name, refused)
        assert closed == {"type": "websocket.close", "code": 4401}, (name, closed)


def test_an_unknown_face_s_closest_score_reaches_admins_only() -> None:
    """The similarity of an unknown face is to the closest enrolled person, whom only admins may
    see: live and in the page's history, managers get the event without it."""
    from django.test import Client

    sales = Department.objects.create(name="Sales")
    manager, admin = _user("boss", "manager", sales), _user("root", "admin")

    def publish() -> None:
        with transaction.atomic():
            entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="unknown", similarity=0.861)
            recognition_published(entry)

    async def scenario() -> tuple[dict, dict]:
        boss, root = await _monitor(manager), await _monitor(admin)
        assert (await boss.connect())[0] and (await root.connect())[0]
        await database_sync_to_async(publish)()
        seen = await boss.receive_json_from(timeout=5), await root.receive_json_from(timeout=5)
        await boss.disconnect()
        await root.disconnect()
        return seen

    to_boss, to_root = async_to_sync(scenario)()
    assert to_boss["outcome"] == "unknown" and to_boss["similarity"] is None
    assert to_root["similarity"] == 0.861
    pages = {}
    for user in (manager, admin):
        client = Client()
        client.force_login(user)
        pages[user.username] = client.get("/monitor/").content.decode()
    assert "score 0.86" in pages["root"] and "score 0.86" not in pages["boss"]
