"""RollCall admins use the Django admin (role admin, staff flag or not), with readable names,
working days as checkboxes and formatted values; managers still cannot reach it."""

from __future__ import annotations

import datetime as dt
import os
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from attendance.models import AttendanceRecord, Shift, ShiftAssignment
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db


def _user(role: str, *, staff: bool) -> Client:
    user = User.objects.create_user(f"{role}-{staff}", password="pw-admin-site-123", is_staff=staff)
    Employee.objects.create(user=user, code=f"{role}-{staff}", full_name=f"{role} person", role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("staff", [False, True])
def test_a_rollcall_admin_can_use_the_django_admin(staff: bool) -> None:
    client = _user("admin", staff=staff)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "You don’t have permission" not in index.content.decode()
    for path in ("/admin/portal/employee/", "/admin/attendance/shift/add/", "/admin/attendance/shiftassignment/",
                 "/admin/auth/user/", "/admin/attendance/attendancerecord/"):
        assert client.get(path).status_code == 200, path
    form = client.get("/admin/attendance/shift/add/").content.decode()
    assert form.count('type="checkbox" name="working_days"') == 7 and 'type="time" name="start"' in form
    response = client.post("/admin/attendance/shift/add/", {
        "name": "Day", "start": "09:00", "end": "17:00", "working_days": ["0", "1", "2", "3", "4"],
        "late_grace_minutes": "10", "early_exit_grace_minutes": "10", "half_day_below_hours": "4",
        "absent_below_hours": "1", "checkout_after_end_minutes": "240"})
    assert response.status_code == 302, response.content.decode()[:3000]
    shift = Shift.objects.get(name="Day")
    assert shift.working_days == [0, 1, 2, 3, 4]
    listing = client.get("/admin/attendance/shift/").content.decode()
    assert "Mon, Tue, Wed, Thu, Fri" in listing and "09:00–17:00" in listing
    sales = Department.objects.create(name="Sales")
    ShiftAssignment.objects.create(shift=shift, department=sales, valid_from=dt.date(2026, 1, 1))
    assert "Day → Sales from 2026-01-01" in client.get("/admin/attendance/shiftassignment/").content.decode()
    person = Employee.objects.create(code="P", full_name="Pat")
    AttendanceRecord.objects.create(employee=person, date=dt.date(2026, 11, 2), worked_seconds=2 * 3600 + 42 * 60,
                                    status="present")
    assert "2:42" in client.get("/admin/attendance/attendancerecord/").content.decode()


def test_every_admin_page_opens_for_a_rollcall_admin(people) -> None:
    """Each registered model's list, and the change page of a real row, answer 200 (no raw errors)."""
    from django.contrib import admin as django_admin

    from recognition.services import face_enroll

    client = _user("admin", staff=False)
    person = Employee.objects.create(code="P", full_name="Pat")
    face_enroll(employee=person, data=people["joe_biden"][0].read_bytes())
    for model in django_admin.site._registry:
        meta = model._meta
        listing = client.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert listing.status_code == 200, meta.label
        row = model.objects.first()
        if row is not None:
            change = client.get(f"/admin/{meta.app_label}/{meta.model_name}/{row.pk}/change/")
            assert change.status_code == 200, meta.label


def test_a_manager_who_is_staff_still_cannot_use_the_django_admin() -> None:
    client = _user("manager", staff=True)
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/portal/employee/").status_code == 302


def test_a_non_staff_rollcall_admin_logs_in_through_the_admin_login_form() -> None:
    user = User.objects.create_user("ada", password="pw-ada-admin-123")
    Employee.objects.create(user=user, code="ADA", full_name="Ada", role="admin")
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "ada", "password": "pw-ada-admin-123",
                                                          "next": "/admin/"})
    assert response.status_code == 302 and client.get("/admin/").status_code == 200
    employee_user = User.objects.create_user("eve", password="pw-eve-employee-123", is_staff=True)
    Employee.objects.create(user=employee_user, code="EVE", full_name="Eve")
    refused = Client().post("/admin/login/", {"username": "eve", "password": "pw-eve-employee-123"})
    assert refused.status_code == 200  # the form again, with its error


def test_create_admin_makes_the_first_admin(monkeypatch) -> None:
    monkeypatch.setenv("FIRST_ADMIN_PASSWORD", "a-long-first-pass-123")
    out = StringIO()
    call_command("create_admin", "--username", "alice", "--name", "Alice Admin", "--password-env",
                 "FIRST_ADMIN_PASSWORD", stdout=out)
    assert "created" in out.getvalue()
    alice = Employee.objects.get(user__username="alice")
    assert alice.role == "admin" and alice.full_name == "Alice Admin" and alice.code == "alice"
    client = Client()
    assert client.login(username="alice", password=os.environ["FIRST_ADMIN_PASSWORD"])
    assert client.get("/manage/devices/").status_code == 200 and client.get("/admin/").status_code == 200
    # Promoting an existing login
    bob = User.objects.create_user("bob", password="pw-bob-12345")
    Employee.objects.create(user=bob, code="B", full_name="Bob")
    call_command("create_admin", "--username", "bob", stdout=StringIO())
    assert Employee.objects.get(user=bob).role == "admin"
