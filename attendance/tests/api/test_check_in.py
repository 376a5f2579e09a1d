"""Kiosk check-ins through the API: recognition + liveness + attendance, on real faces."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, AttendanceRecord
from portal.models import Department, Employee
from portal.services import device_create
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _jpeg(image: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    buffer.seek(0)
    buffer.name = "frame.jpg"
    return buffer


def _post(client: APIClient, frames: list[np.ndarray], fps: float = 12.0):
    return client.post("/api/v1/check-ins", {"frames": [_jpeg(f) for f in frames], "fps": fps}, format="multipart")


@pytest.fixture()
def manager() -> APIClient:
    user = User.objects.create_user("boss")
    Employee.objects.create(user=user, code="M", full_name="Boss", role="manager")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_still_photo_burst_is_refused_and_writes_nothing(manager: APIClient, people) -> None:
    team = Department.objects.create(name="Team")
    Employee.objects.filter(user__username="boss").update(department=team)  # Ana is hers to see
    ana = Employee.objects.create(code="A", full_name="Ana Example", department=team)
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    still = np.asarray(Image.open(people["joe_biden"][1]).convert("RGB"))
    answer = _post(manager, [still] * 12).json()
    assert answer["outcome"] == "liveness_failed" and answer["employee"] == "Ana Example"
    assert AttendanceEvent.objects.count() == 0 and AttendanceRecord.objects.count() == 0


def test_recognised_check_in_then_repeat_then_out_with_liveness_off(manager: APIClient, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 0
    ana = Employee.objects.create(code="A", full_name="Ana Example")
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    frame = np.asarray(Image.open(people["joe_biden"][1]).convert("RGB"))
    first = _post(manager, [frame] * 3).json()
    assert first["outcome"] == "checked_in" and first["message"].startswith("Welcome, Ana — checked in ")
    second = _post(manager, [frame] * 3).json()
    assert second["outcome"] == "checked_out" and "h" in second["message"] and second["message"].startswith("Goodbye, Ana")
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 3600
    third = _post(manager, [frame] * 3).json()
    # Every recognition is stored as an event; a repeat is kept as one and changes nothing.
    assert third["outcome"] == "repeated" and AttendanceEvent.objects.filter(kind="repeat").exists()
    assert AttendanceEvent.objects.count() == 3
    stranger = np.asarray(Image.open(people["alex_lacamoire"][0]).convert("RGB"))
    assert _post(manager, [stranger] * 3).json()["outcome"] == "unknown"
    assert AttendanceEvent.objects.count() == 3


def test_who_may_check_in_and_bad_frames(people) -> None:
    assert APIClient().post("/api/v1/check-ins", {}, format="multipart").status_code in (401, 403)
    employee_user = User.objects.create_user("ana")
    Employee.objects.create(user=employee_user, code="A", full_name="Ana")
    client = APIClient()
    client.force_authenticate(employee_user)
    assert client.post("/api/v1/check-ins", {}, format="multipart").status_code == 403
    _, token = device_create(name="Door")
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    missing = device.post("/api/v1/check-ins", {}, format="multipart")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid"
    text = io.BytesIO(b"not a frame")
    text.name = "frame.jpg"
    bad = device.post("/api/v1/check-ins", {"frames": [text]}, format="multipart")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_image"


def test_a_live_blinking_person_checks_in_from_a_device(shared_data: Path) -> None:
    """The shared selfie video: enrolled from its first frame, then a 2 s burst with a blink."""
    capture = cv2.VideoCapture(str(shared_data / "video" / "blink_selfie_14s.mp4"))
    frames = []
    while len(frames) < 60:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    person = Employee.objects.create(code="S", full_name="Sam Selfie")
    face_enroll(employee=person, data=_jpeg(frames[0]).getvalue())
    _, token = device_create(name="Door")
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    burst = frames[2:50:2]  # 24 frames at 12 fps = 2 s, containing the blink at frames 10-13
    answer = _post(device, burst, fps=11.93).json()
    assert answer["outcome"] == "checked_in" and answer["employee"] == "Sam Selfie" and answer["liveness"] == "ok"
    event = AttendanceEvent.objects.get()
    assert event.employee == person and event.source == "device:Door"
