"""A device's dead letters (events it gave up on) reach the portal with its heartbeat — REST and
websocket — are stored on the Device and shown on the live monitor, live and on the page."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.consumers import MonitorConsumer
from portal.asgi import application
from portal.models import Employee
from portal.services import device_create

pytestmark = pytest.mark.django_db(transaction=True)

LETTER = {"key": "a1b2c3d4e5", "captured_at": "2026-11-02T09:00:00+00:00", "reason": "captured_at_too_old: too old"}


@pytest.fixture()
def boss() -> User:
    user = User.objects.create_user("boss", password="pw-boss-123")
    Employee.objects.create(user=user, code="M", full_name="Mona Manager", role="manager")
    return user


def _device_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/device/", headers=[
        (b"authorization", f"Device {token}".encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")])


def test_rest_heartbeat_reports_dead_letters_and_the_monitor_page_shows_them(boss: User) -> None:
    device, token = device_create(name="Front door")
    door = APIClient()
    door.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    plain = door.post("/api/v1/device/heartbeat", {}, format="json")  # an old client: no report, nothing changes
    assert plain.status_code == 200 and plain.json()["dead_letters"] == 0
    answer = door.post("/api/v1/device/heartbeat", {"dead_letters": 3, "recent_dead_letters": [LETTER]}, format="json")
    assert answer.status_code == 200 and answer.json()["dead_letters"] == 3
    device.refresh_from_db()
    assert device.dead_letters == 3 and device.dead_letters_recent == [LETTER] and device.last_seen_at is not None
    bad = door.post("/api/v1/device/heartbeat", {"dead_letters": -1}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "dead_letters" in bad.json()["detail"]
    device.refresh_from_db()
    assert device.dead_letters == 3

    browser = Client()
    browser.force_login(boss)
    page = browser.get("/monitor/").content.decode()
    assert "3</span> dead letters" in page and "captured_at_too_old: too old" in page and "a1b2c3d4e5" in page
    door.post("/api/v1/device/heartbeat", {"dead_letters": 0, "recent_dead_letters": []}, format="json")
    assert "dead-letters\" hidden" in browser.get("/monitor/").content.decode()


def test_websocket_heartbeat_reports_dead_letters_live_to_the_monitor(boss: User) -> None:
    device, token = device_create(name="Back door")

    async def scenario() -> None:
        monitor = WebsocketCommunicator(MonitorConsumer.as_asgi(), "/ws/monitor/")
        monitor.scope["user"] = boss
        assert (await monitor.connect())[0]
        socket = _device_socket(token)
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from(5))["type"] == "hello"
        await socket.send_json_to({"type": "heartbeat", "dead_letters": 1, "recent_dead_letters": [LETTER]})
        assert (await socket.receive_json_from(5))["type"] == "heartbeat"
        seen = []
        while not any(e.get("dead_letters") == 1 for e in seen):
            seen.append(await monitor.receive_json_from(5))
        event = seen[-1]
        assert event["kind"] == "device" and event["device"] == "Back door" and event["dead_letters_recent"] == [LETTER]
        # A malformed report is refused with a typed error; the connection stays up.
        await socket.send_json_to({"type": "heartbeat", "dead_letters": "many"})
        error = await socket.receive_json_from(5)
        assert error["type"] == "error" and error["code"] == "bad_request" and "dead_letters" in error["detail"]
        await socket.send_json_to({"type": "heartbeat"})
        assert (await socket.receive_json_from(5))["type"] == "heartbeat"
        # A check-in captured too long ago gets a typed refusal (the device dead-letters it).
        old = (timezone.now() - dt.timedelta(days=400)).isoformat()
        await socket.send_json_to({"type": "check_in", "key": "evt-too-old-1", "captured_at": old, "frames": ["AAAA"]})
        refused = await socket.receive_json_from(10)
        assert refused == {"type": "error", "key": "evt-too-old-1", "code": "captured_at_too_old", "detail": refused["detail"]}
        await socket.disconnect()
        await monitor.disconnect()

    async_to_sync(scenario)()
    device.refresh_from_db()
    assert device.dead_letters == 1
