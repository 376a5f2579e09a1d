"""Devices an admin deactivates or re-keys: open websockets close within seconds and refuse
further messages; a rotated token replaces the old one at once (REST and websocket). Driven with
Channels' WebsocketCommunicator against the real ASGI application (in-memory channel layer)."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from portal.asgi import application
from portal.models import Device, Employee
from portal.services import device_create

pytestmark = pytest.mark.django_db(transaction=True)


def _socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/device/", headers=[
        (b"authorization", f"Device {token}".encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")])


def _admin_client() -> APIClient:
    user = User.objects.create(username="root", is_staff=True, is_superuser=True)
    Employee.objects.create(user=user, code="root", full_name="Root", role="admin")
    client = APIClient()
    client.force_login(user)
    return client


async def _open(token: str) -> WebsocketCommunicator:
    socket = _socket(token)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def _closed_within(socket: WebsocketCommunicator, seconds: float) -> tuple[list[dict], int]:
    """Messages received until the server closed the socket, and the close code."""
    messages, deadline = [], time.monotonic() + seconds
    while True:
        output = await socket.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return messages, output.get("code")
        messages.append(output)


def test_deactivating_a_device_closes_its_websocket_within_seconds_and_refuses_it_after() -> None:
    admin = _admin_client()
    device, token = device_create(name="Front door")

    async def scenario() -> None:
        socket = await _open(token)
        other_device, other_token = await database_sync_to_async(device_create)(name="Back door")
        other = await _open(other_token)
        started = time.monotonic()
        answer = await database_sync_to_async(admin.patch)(f"/api/v1/devices/{device.pk}", {"is_active": False},
                                                           format="json")
        assert answer.status_code == 200 and answer.json()["is_active"] is False
        messages, code = await _closed_within(socket, 3)
        assert time.monotonic() - started < 3
        assert code == 4403
        assert any('"device_revoked"' in m.get("text", "") for m in messages)
        await socket.wait()
        # The other device is untouched; the deactivated one cannot reconnect.
        await other.send_json_to({"type": "heartbeat"})
        assert (await other.receive_json_from(timeout=5))["type"] == "heartbeat"
        await other.disconnect()
        again = _socket(token)
        connected, code = await again.connect()
        assert not connected and code == 4401

    async_to_sync(scenario)()
    assert APIClient(HTTP_AUTHORIZATION=f"Device {token}").post("/api/v1/device/heartbeat").status_code in (401, 403)


def test_every_message_rechecks_the_device_even_without_the_close_event() -> None:
    """Deactivated behind the service's back (another process, a raw update): the next message
    is refused and the socket closed."""
    device, token = device_create(name="Front door")

    async def scenario() -> None:
        socket = await _open(token)
        await socket.send_json_to({"type": "heartbeat"})
        assert (await socket.receive_json_from(timeout=5))["type"] == "heartbeat"
        await database_sync_to_async(Device.objects.filter(pk=device.pk).update)(is_active=False)
        await socket.send_json_to({"type": "heartbeat"})
        messages, code = await _closed_within(socket, 3)
        assert code == 4403 and '"device_revoked"' in messages[0]["text"]

    async_to_sync(scenario)()


def test_rotating_a_token_answers_the_new_one_once_and_the_old_one_stops_working() -> None:
    admin = _admin_client()
    device, old_token = device_create(name="Front door")

    async def scenario() -> None:
        old_socket = await _open(old_token)
        answer = await database_sync_to_async(admin.post)(f"/api/v1/devices/{device.pk}/rotate-token")
        assert answer.status_code == 200
        new_token = answer.json()["token"]
        assert new_token != old_token and answer.json()["token_prefix"] == new_token[:8]
        _, code = await _closed_within(old_socket, 3)
        assert code == 4403
        await old_socket.wait()
        refused = _socket(old_token)
        assert (await refused.connect()) == (False, 4401)
        new_socket = await _open(new_token)
        await new_socket.send_json_to({"type": "heartbeat"})
        assert (await new_socket.receive_json_from(timeout=5))["type"] == "heartbeat"
        await new_socket.disconnect()
        return new_token

    new_token = async_to_sync(scenario)()
    assert APIClient(HTTP_AUTHORIZATION=f"Device {old_token}").post("/api/v1/device/heartbeat").status_code in (401, 403)
    assert APIClient(HTTP_AUTHORIZATION=f"Device {new_token}").post("/api/v1/device/heartbeat").status_code == 200
    # The token is not shown again: the device's detail has only the prefix.
    assert "token" not in admin.get(f"/api/v1/devices/{device.pk}").json()
    assert Device.objects.get(pk=device.pk).token_hash == Device.hash_token(new_token)


def test_the_admin_page_deactivates_and_rotates_through_the_same_service() -> None:
    admin = _admin_client()
    device, token = device_create(name="Front door")

    async def scenario() -> None:
        socket = await _open(token)
        page = await database_sync_to_async(admin.post)(f"/admin/portal/device/{device.pk}/change/", {
            "name": "Front door", "location": "", "_save": "Save"})  # is_active unticked
        assert page.status_code == 302
        _, code = await _closed_within(socket, 3)
        assert code == 4403

    async_to_sync(scenario)()
    assert not Device.objects.get(pk=device.pk).is_active
    Device.objects.filter(pk=device.pk).update(is_active=True)
    page = admin.post("/admin/portal/device/", {"action": "rotate_token", "_selected_action": [device.pk]}, follow=True)
    shown = [str(m) for m in page.context["messages"]]
    assert any("New token for Front door" in m for m in shown)
    new_token = next(m for m in shown if "New token" in m).rsplit(" ", 1)[-1]
    assert Device.for_token(new_token) is not None and Device.for_token(token) is None
