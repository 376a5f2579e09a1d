"""Face login: opt-in, 1:1 verification + liveness, rate-limited failures, password unaffected."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from portal.models import Employee
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _frames(path: Path, count: int) -> list[io.BytesIO]:
    data = path.read_bytes()
    frames = []
    for i in range(count):
        frame = io.BytesIO(data)
        frame.name = f"f{i}.jpg"
        frames.append(frame)
    return frames


@pytest.fixture()
def ana(people) -> User:
    cache.clear()
    user = User.objects.create_user("ana", password="pw-ana-123")
    employee = Employee.objects.create(user=user, code="A", full_name="Ana")
    face_enroll(employee=employee, data=people["joe_biden"][0].read_bytes())
    return user


def test_opt_in_then_log_in_with_the_face(ana, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"  # this part checks verification; liveness is checked below
    client = Client()
    refused = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert refused.status_code == 400 and "not enabled" in refused.json()["detail"]
    me = Client()
    me.force_login(ana)
    me.post("/me/", {"face_login": "on"})
    assert Employee.objects.get(user=ana).face_login
    wrong = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["alex_lacamoire"][0], 3)})
    assert wrong.status_code == 401 and client.get("/").status_code == 302
    right = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert right.status_code == 200 and right.json()["ok"]
    assert client.get("/").status_code == 200  # logged in
    assert Client().login(username="ana", password="pw-ana-123")  # the password still works


def test_a_still_photo_fails_liveness_and_failures_are_rate_limited(ana, people, settings) -> None:
    settings.FACE_LOGIN_MAX_FAILURES = 3
    Employee.objects.filter(user=ana).update(face_login=True)
    client = Client()
    still = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 12)})
    assert still.status_code == 400 and "Liveness" in still.json()["detail"]
    for _ in range(2):
        client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["alex_lacamoire"][0], 2)})
    settings.ROLLCALL_LIVENESS = "off"
    blocked = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.json()["detail"]
    assert client.get("/").status_code == 302
