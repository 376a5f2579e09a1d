"""Attendance rules on a seeded fortnight: late, half day, absence, holiday, early exit, breaks,
repeated recognitions, a missing check-out and a manager's correction with its audit trail."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    Holiday,
    HolidayList,
    Shift,
    ShiftAssignment,
)
from attendance.services import attendance_check, attendance_close_day, attendance_correct, shift_for
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db
UTC = dt.UTC
Status = AttendanceRecord.Status


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture()
def ana(settings) -> Employee:
    settings.TIME_ZONE = "UTC"
    team = Department.objects.create(name="Sales")
    holidays = HolidayList.objects.create(name="2026")
    Holiday.objects.create(holiday_list=holidays, date=dt.date(2026, 11, 6), name="Founders' day")
    shift = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), late_grace_minutes=10,
                                 early_exit_grace_minutes=10, half_day_below_hours=4, absent_below_hours=1,
                                 working_days=[0, 1, 2, 3, 4], holiday_list=holidays)
    ShiftAssignment.objects.create(shift=shift, department=team, valid_from=dt.date(2026, 1, 1))
    return Employee.objects.create(code="A", full_name="Ana", department=team)


def visit(employee: Employee, *times: dt.datetime) -> list:
    return [attendance_check(employee=employee, at=t) for t in times]


def test_a_fortnight_of_rules(ana: Employee) -> None:
    visit(ana, at(2, 8, 55), at(2, 17, 5))                    # Mon: on time
    visit(ana, at(3, 9, 25), at(3, 17, 30))                   # Tue: late
    visit(ana, at(4, 9), at(4, 12))                           # Wed: 3 h -> half day
    # Thu 5: nobody came; Fri 6: holiday; Sat 7 / Sun 8: weekend
    results = visit(ana, at(9, 8, 50), at(9, 8, 51), at(9, 17))  # Mon: a repeated recognition at 08:51
    visit(ana, at(10, 9), at(10, 16))                         # Tue: leaves an hour early
    visit(ana, at(11, 9))                                     # Wed: forgot to check out
    visit(ana, at(12, 9), at(12, 12), at(12, 13), at(12, 17))  # Thu: lunch break
    for day in range(2, 13):
        attendance_close_day(day=dt.date(2026, 11, day))
    records = {r.date.day: r for r in AttendanceRecord.objects.filter(employee=ana)}

    assert sorted(records) == [2, 3, 4, 5, 6, 9, 10, 11, 12]  # no weekend records
    assert records[2].status == Status.PRESENT and records[2].worked_seconds == (8 * 60 + 10) * 60
    assert records[3].status == Status.LATE and records[3].late
    assert records[4].status == Status.HALF_DAY and records[4].worked_seconds == 3 * 3600
    assert records[5].status == Status.ABSENT and records[5].first_in is None
    assert records[6].status == Status.HOLIDAY
    assert [r.kind for r in results] == ["in", "in", "out"] and results[1].repeated
    # Every recognition is stored; the repeat is kept as one, but it is not a check-in or out.
    kinds = list(AttendanceEvent.objects.filter(employee=ana, day=dt.date(2026, 11, 9)).values_list("kind", flat=True))
    assert kinds == ["in", "repeat", "out"]
    assert records[9].status == Status.PRESENT and not records[9].late
    assert records[10].status == Status.PRESENT and records[10].early_exit and records[10].worked_seconds == 7 * 3600
    assert records[11].missing_checkout and records[11].status == Status.ABSENT
    assert records[12].status == Status.PRESENT and records[12].worked_seconds == 7 * 3600
    late_count = sum(r.late for r in records.values())
    assert late_count == 1
    # minutes: Mon 2 490, Tue 3 485, Wed 4 180, Mon 9 490, Tue 10 420, Thu 12 420
    assert sum(r.worked_seconds for r in records.values()) == (490 + 485 + 180 + 490 + 420 + 420) * 60

    boss = User.objects.create_user("boss")
    with pytest.raises(ValueError, match="reason"):
        attendance_correct(record=records[11], changed_by=boss, reason="  ", last_out=at(11, 17))
    fixed = attendance_correct(record=records[11], changed_by=boss, reason="Badge reader photo shows her leaving at 17:00",
                               last_out=at(11, 17))
    assert fixed.status == Status.PRESENT and fixed.worked_seconds == 8 * 3600 and fixed.corrected
    audit = AttendanceCorrection.objects.get(record=fixed)
    assert audit.before["status"] == Status.ABSENT and audit.after["status"] == Status.PRESENT
    assert audit.changed_by == boss and "17:00" in audit.reason
    attendance_close_day(day=dt.date(2026, 11, 11))  # closing again keeps the manager's decision
    fixed.refresh_from_db()
    assert fixed.status == Status.PRESENT


def test_open_day_status_and_idempotent_close(ana: Employee) -> None:
    first = attendance_check(employee=ana, at=at(16, 9, 30))
    assert first.kind == "in" and first.record.status == Status.LATE
    assert attendance_close_day(day=dt.date(2026, 11, 16)) == 1
    assert attendance_close_day(day=dt.date(2026, 11, 16)) == 1
    assert AttendanceRecord.objects.filter(employee=ana).count() == 1


def test_own_shift_overrides_the_department_and_naive_times_are_refused(ana: Employee) -> None:
    night = Shift.objects.create(name="Night", start=dt.time(13), end=dt.time(21), working_days=[0, 1, 2, 3, 4])
    ShiftAssignment.objects.create(shift=night, employee=ana, valid_from=dt.date(2026, 11, 15))
    assert shift_for(employee=ana, day=dt.date(2026, 11, 14)).name == "Day"
    assert shift_for(employee=ana, day=dt.date(2026, 11, 16)).name == "Night"
    assert attendance_check(employee=ana, at=at(16, 13, 5)).record.status == Status.OPEN  # on time for Night
    with pytest.raises(ValueError, match="timezone-aware"):
        attendance_check(employee=ana, at=dt.datetime(2026, 11, 17, 9))  # noqa: DTZ001 - the point of the test


def test_the_nightly_job_is_scheduled_in_the_database_and_closes_yesterday(ana: Employee) -> None:
    from django_celery_beat.models import PeriodicTask

    from recognition.jobs import run

    job = PeriodicTask.objects.get(name="Close yesterday's attendance")
    assert job.task == "attendance.close_yesterday" and job.crontab.hour == "0" and job.enabled
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    result = run("attendance.close_yesterday")
    assert result["day"] == yesterday.isoformat()
    expected = 1 if yesterday.weekday() < 5 else 0  # Mon-Fri shift: a record even on a holiday
    assert result["settled"] == expected
    if expected:
        status = AttendanceRecord.objects.get(employee=ana, date=yesterday).status
        assert status == (Status.HOLIDAY if yesterday == dt.date(2026, 11, 6) else Status.ABSENT)


def test_the_nightly_job_purges_old_monitor_history_with_its_thumbnails(settings, django_capture_on_commit_callbacks) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from attendance.models import RecognitionLog
    from recognition.jobs import run

    settings.ROLLCALL_MONITOR_KEEP_DAYS = 30
    now = timezone.now()
    old_name = default_storage.save("monitor/old.jpg", ContentFile(b"\xff\xd8old"))
    new_name = default_storage.save("monitor/new.jpg", ContentFile(b"\xff\xd8new"))
    old = RecognitionLog.objects.create(at=now - dt.timedelta(days=31), state="done", outcome="unknown", thumbnail=old_name)
    new = RecognitionLog.objects.create(at=now - dt.timedelta(days=29), state="done", outcome="unknown", thumbnail=new_name)
    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion commits
        assert run("attendance.close_yesterday")["monitor_purged"] == 1
    assert not RecognitionLog.objects.filter(pk=old.pk).exists() and not default_storage.exists(old_name)
    assert RecognitionLog.objects.filter(pk=new.pk).exists() and default_storage.exists(new_name)
