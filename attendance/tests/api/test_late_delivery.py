"""A door's day delivered out of order over the REST API, on real faces: every event answered 2xx
with its kind in the recomputed day, the record in capture order; an event that can never be
accepted gets a typed 4xx (so the device parks it instead of retrying)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, AttendanceRecord, RecognitionLog
from portal.models import Department, Employee
from portal.services import device_create
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _frames(path, count: int = 3) -> list[io.BytesIO]:
    files = []
    for _ in range(count):
        handle = io.BytesIO(path.read_bytes())
        handle.name = "frame.jpg"
        files.append(handle)
    return files


def test_a_doors_day_arriving_out_of_order_is_recorded_in_capture_order(people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.TIME_ZONE = "UTC"
    team = Department.objects.create(name="Team")
    joe = Employee.objects.create(code="J", full_name="Joe Example", department=team)
    face_enroll(employee=joe, data=people["joe_biden"][0].read_bytes())
    _, token = device_create(name="Front door")
    door = APIClient()
    door.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    yesterday = timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)

    def at(hour: int) -> dt.datetime:
        return dt.datetime.combine(yesterday, dt.time(hour), tzinfo=dt.UTC)

    answers = []
    for hour in (17, 9, 13, 12):  # captured 09:00, 12:00, 13:00, 17:00 while the door was offline
        response = door.post("/api/v1/check-ins", {"frames": _frames(people["joe_biden"][1]), "key": f"evt-{hour:02d}-0000",
                                                   "captured_at": at(hour).isoformat()}, format="multipart")
        assert response.status_code == 200, response.content
        answers.append(response.json()["outcome"])
    assert answers == ["checked_in", "checked_in", "checked_out", "checked_out"]
    record = AttendanceRecord.objects.get(employee=joe)
    assert (record.date, record.first_in, record.last_out, record.worked_seconds) == (yesterday, at(9), at(17), 7 * 3600)
    assert list(AttendanceEvent.objects.order_by("at").values_list("kind", flat=True)) == ["in", "out", "in", "out"]

    too_old = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_DEVICE_MAX_DELAY_SECONDS + 60)
    refused = door.post("/api/v1/check-ins", {"frames": _frames(people["joe_biden"][1]), "key": "evt-old-00001",
                                              "captured_at": too_old.isoformat()}, format="multipart")
    assert refused.status_code == 400 and refused.json()["code"] == "captured_at_too_old"
    assert "older" in refused.json()["detail"] and not RecognitionLog.objects.filter(key="evt-old-00001").exists()
