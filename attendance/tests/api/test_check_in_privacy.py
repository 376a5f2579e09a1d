"""A check-in answer names only people its caller may see when nothing was recorded
(liveness_failed, unknown); recorded outcomes keep their greeting. REST (users and devices, fresh
and retried keys) and the device websocket, on real faces. Plus: a naive captured_at is refused
over REST as over the websocket."""

from __future__ import annotations

import base64
import io

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import RecognitionLog
from portal.asgi import application
from portal.models import Department, Employee
from portal.services import device_create
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)

HIDDEN = {"employee_id": None, "employee": None, "similarity": None}


def _frames(path, count: int) -> list[io.BytesIO]:
    frames = []
    for _ in range(count):
        handle = io.BytesIO(path.read_bytes())
        handle.name = "frame.jpg"
        frames.append(handle)
    return frames


def _client(username: str, role: str, department: Department | None) -> APIClient:
    user = User.objects.create_user(username)
    Employee.objects.create(user=user, code=username, full_name=username.title(), role=role, department=department)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture()
def world(people) -> dict[str, object]:
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    ana = Employee.objects.create(code="A", full_name="Ana Example", department=sales)
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    device, token = device_create(name="Front door")
    door = APIClient()
    door.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return {"ana": ana, "token": token, "door": door,
            "own": _client("sue", "manager", sales), "other": _client("otto", "manager", ops),
            "admin": _client("root", "admin", None)}


def _post(client: APIClient, frames: list[io.BytesIO], **fields):
    return client.post("/api/v1/check-ins", {"frames": frames, "fps": 12, **fields}, format="multipart")


def test_a_failed_liveness_names_the_person_only_to_who_may_see_them(world, people) -> None:
    still = people["joe_biden"][1]
    other = _post(world["other"], _frames(still, 12)).json()
    assert other["outcome"] == "liveness_failed" and other == {**other, **HIDDEN}
    assert "Ana" not in other["message"]
    for caller in ("own", "admin"):
        seen = _post(world[caller], _frames(still, 12)).json()
        assert seen["outcome"] == "liveness_failed" and seen["employee_id"] == world["ana"].pk
        assert seen["employee"] == "Ana Example" and seen["similarity"] > 0.5


def test_a_device_is_told_nobody_on_liveness_failed_also_on_a_retried_key(world, people) -> None:
    still = people["joe_biden"][1]
    first = _post(world["door"], _frames(still, 12), key="still-photo-1").json()
    assert first["outcome"] == "liveness_failed" and first == {**first, **HIDDEN}
    assert "Ana" not in first["message"]  # the hint stays, nameless
    again = _post(world["door"], _frames(still, 12), key="still-photo-1").json()
    assert again == first
    stored = RecognitionLog.objects.get(key="still-photo-1")
    assert stored.answer["employee_id"] == world["ana"].pk  # the monitor (managers who may see) keeps it


def test_a_photo_held_up_is_refused_alike_whether_or_not_its_face_is_enrolled(world, people) -> None:
    """Liveness comes before the match: a caller who may not see the person (another department's
    manager, a device) cannot use still photos to learn whether a face is enrolled here."""
    for caller in ("other", "door"):
        enrolled = _post(world[caller], _frames(people["joe_biden"][1], 12)).json()
        stranger = _post(world[caller], _frames(people["alex_lacamoire"][0], 12)).json()
        assert enrolled["outcome"] == stranger["outcome"] == "liveness_failed", caller
        assert {k: v for k, v in enrolled.items() if k != "similarity"} == {
            k: v for k, v in stranger.items() if k != "similarity"}, caller
        assert enrolled == {**enrolled, **HIDDEN} and stranger == {**stranger, **HIDDEN}
    assert not RecognitionLog.objects.filter(outcome__in=["checked_in", "checked_out"]).exists()


def test_an_unknown_face_shows_its_closest_similarity_to_admins_only(world, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"  # a live stranger (liveness is checked first: tests/api above)
    stranger = people["alex_lacamoire"][0]
    for caller in ("other", "own", "door"):
        answer = _post(world[caller], _frames(stranger, 3)).json()
        assert answer["outcome"] == "unknown" and answer == {**answer, **HIDDEN}, caller
    admin = _post(world["admin"], _frames(stranger, 3)).json()
    assert admin["outcome"] == "unknown" and admin["similarity"] is not None


def test_recorded_outcomes_keep_the_greeting_for_any_caller(world, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    answer = _post(world["other"], _frames(people["joe_biden"][1], 3)).json()
    assert answer["outcome"] == "checked_in" and answer["employee"] == "Ana Example"
    assert answer["message"].startswith("Welcome, Ana")


def test_the_device_websocket_decision_hides_the_person_on_liveness_failed(world, people) -> None:
    frame = base64.b64encode(people["joe_biden"][1].read_bytes()).decode()
    message = {"type": "check_in", "key": "ws-still-01", "captured_at": timezone.now().isoformat(), "fps": 12,
               "frames": [frame] * 12}

    async def scenario() -> list[dict]:
        door = WebsocketCommunicator(application, "/ws/device/", headers=[
            (b"authorization", f"Device {world['token']}".encode()), (b"origin", b"http://localhost"),
            (b"host", b"localhost")])
        assert (await door.connect())[0]
        await door.receive_json_from(timeout=5)  # hello
        answers = []
        for _ in range(2):  # the retry gets the same, filtered, answer
            await door.send_json_to(message)
            answers.append(await door.receive_json_from(timeout=120))
        await door.disconnect()
        return answers

    first, again = async_to_sync(scenario)()
    assert first["type"] == "decision" and first["answer"]["outcome"] == "liveness_failed"
    assert first["answer"] == {**first["answer"], **HIDDEN}
    assert again == first


def test_a_capture_time_without_a_zone_is_refused_over_rest_as_over_the_websocket(world, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    naive = _post(world["door"], _frames(people["joe_biden"][1], 3), key="naive-time-1",
                  captured_at="2026-11-30T10:00:00")
    assert naive.status_code == 400 and naive.json()["code"] == "captured_at_invalid", naive.json()
    aware = _post(world["door"], _frames(people["alex_lacamoire"][0], 3), key="aware-time-1",
                  captured_at=timezone.now().isoformat())
    assert aware.status_code == 200 and aware.json()["outcome"] == "unknown"
