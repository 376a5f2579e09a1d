"""The quick start's demo data: idempotent, real enrolments, and a demo door device whose token
file lets the edge client connect at once."""

from __future__ import annotations

import datetime as dt
import stat
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, AttendanceRecord, Shift, ShiftAssignment
from portal.models import Department, Device, Employee
from recognition.models import FaceImage

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_twice(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path / "var"
    call_command("seed_demo", stdout=StringIO())
    faces, employees = FaceImage.objects.count(), Employee.objects.count()
    assert employees == 6 and faces >= 5
    token_file = settings.VAR_DIR / "demo-device-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token_file.read_text().strip()}")
    assert client.post("/api/v1/device/heartbeat").json()["name"] == "Demo door"
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert (FaceImage.objects.count(), Employee.objects.count(), Device.objects.count()) == (faces, employees, 1)
    assert "token in" in out.getvalue()


def test_seed_demo_ships_a_shift_and_closed_history(settings, tmp_path) -> None:
    """Today and Month mean something on first start: a department shift, five working days of
    real events recomputed and closed (present, late, half day, absent), everyone due today."""
    settings.VAR_DIR = tmp_path / "var"
    call_command("seed_demo", stdout=StringIO())
    shift = Shift.objects.get(name="Office hours")
    assert (shift.start, shift.end, shift.working_days) == (dt.time(9), dt.time(17), [0, 1, 2, 3, 4])
    team = Department.objects.get(name="Demo team")
    assert ShiftAssignment.objects.filter(shift=shift, department=team).exists()
    records = AttendanceRecord.objects.all()
    days = sorted(set(records.values_list("date", flat=True)))
    assert len(days) == 5 and all(day.weekday() < 5 and day < timezone.localdate() for day in days)
    assert all(record.settled_at is not None for record in records)
    assert records.count() == 5 * Employee.objects.filter(department=team).count()
    statuses = set(records.values_list("status", flat=True))
    assert {"present", "late", "half_day", "absent"} <= statuses
    assert AttendanceEvent.objects.filter(source="demo").count() > 40
    manager = User.objects.get(username="manager")
    client = Client()
    client.force_login(manager)
    sheet = client.get("/reports/month/", {"month": f"{days[-1]:%Y-%m}"}).content.decode()
    assert "Kit Harington" in sheet and ">A<" in sheet and ">L<" in sheet
    board = client.get("/reports/today/")
    assert board.status_code == 200
    if timezone.localdate().weekday() < 5:
        assert len(board.context["board"].not_yet_in) == Employee.objects.filter(department=team).count()
    events = AttendanceEvent.objects.count()
    call_command("seed_demo", stdout=StringIO())
    assert (Shift.objects.count(), ShiftAssignment.objects.count(), AttendanceEvent.objects.count()) == (1, 1, events)
