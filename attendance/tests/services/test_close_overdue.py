"""The nightly close catches up: nights the portal was off leave no day open and no absence unmarked."""

from __future__ import annotations

import datetime as dt

import pytest

from attendance.models import AttendanceRecord, Shift, ShiftAssignment
from attendance.services import attendance_check, attendance_close_day
from attendance.services_close import attendance_close_overdue, days_to_close
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db
UTC = dt.UTC
TODAY = dt.date(2026, 11, 20)  # a Friday


@pytest.fixture()
def team(settings) -> tuple[Employee, Employee]:
    settings.TIME_ZONE = "UTC"
    sales = Department.objects.create(name="Sales")
    shift = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4])
    ShiftAssignment.objects.create(shift=shift, department=sales, valid_from=dt.date(2026, 1, 1))
    return (Employee.objects.create(code="A", full_name="Ana", department=sales),
            Employee.objects.create(code="B", full_name="Bob", department=sales))


def test_a_site_that_never_closed_starts_with_yesterday(team) -> None:
    assert days_to_close(today=TODAY) == [dt.date(2026, 11, 19)]


def test_days_after_the_last_close_and_days_left_open_are_closed(team) -> None:
    ana, bob = team
    attendance_close_day(day=dt.date(2026, 11, 16))  # Monday closed; then the portal was off until Friday
    attendance_check(employee=ana, at=dt.datetime(2026, 11, 17, 9, tzinfo=UTC))  # Tuesday: checked in, never out
    assert days_to_close(today=TODAY) == [dt.date(2026, 11, d) for d in (17, 18, 19)]
    closed = attendance_close_overdue(today=TODAY)
    assert closed == {"2026-11-17": 2, "2026-11-18": 2, "2026-11-19": 2}
    tuesday = AttendanceRecord.objects.get(employee=ana, date=dt.date(2026, 11, 17))
    assert tuesday.settled_at is not None and tuesday.missing_checkout
    assert AttendanceRecord.objects.get(employee=bob, date=dt.date(2026, 11, 18)).status == "absent"
    assert days_to_close(today=TODAY) == [dt.date(2026, 11, 19)]  # nothing left behind
