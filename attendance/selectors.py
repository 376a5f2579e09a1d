"""Attendance reads: the today board, the monthly sheet, record lists; always limited to the
employees the viewer may see (portal.permissions)."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from attendance.models import AttendanceRecord, RecognitionLog
from attendance.services import shift_for
from portal.models import Device, Employee
from portal.permissions import is_admin, visible_employees

Status = AttendanceRecord.Status
LETTERS = {Status.PRESENT: "P", Status.LATE: "L", Status.HALF_DAY: "H", Status.ABSENT: "A",
           Status.ON_LEAVE: "V", Status.HOLIDAY: "O", Status.OPEN: "•"}


def employees_for(user: AbstractBaseUser, *, department_id: int | None = None) -> QuerySet[Employee]:
    employees = visible_employees(user).filter(is_active=True).select_related("department").order_by("full_name")
    return employees.filter(department_id=department_id) if department_id else employees


def records_for(user: AbstractBaseUser, *, start: dt.date, end: dt.date,
                department_id: int | None = None) -> QuerySet[AttendanceRecord]:
    return (AttendanceRecord.objects.filter(employee__in=employees_for(user, department_id=department_id),
                                            date__gte=start, date__lte=end)
            .select_related("employee", "employee__department").order_by("date", "employee__full_name"))


@dataclass
class TodayBoard:
    day: dt.date
    inside: list[AttendanceRecord] = field(default_factory=list)   # checked in, not out
    left: list[AttendanceRecord] = field(default_factory=list)     # came and went
    late: list[AttendanceRecord] = field(default_factory=list)
    not_yet_in: list[Employee] = field(default_factory=list)       # due today, no check-in yet
    absent: list[AttendanceRecord] = field(default_factory=list)   # settled as absent


def today_board(user: AbstractBaseUser, *, day: dt.date | None = None, department_id: int | None = None) -> TodayBoard:
    day = day or timezone.localdate()
    board = TodayBoard(day=day)
    records = {r.employee_id: r for r in records_for(user, start=day, end=day, department_id=department_id)}
    for employee in employees_for(user, department_id=department_id):
        record = records.get(employee.pk)
        if record is None or record.first_in is None:
            if record is not None and record.status == Status.ABSENT:
                board.absent.append(record)
                continue
            shift = shift_for(employee=employee, day=day)
            if shift is not None and day.weekday() in (shift.working_days or []):
                board.not_yet_in.append(employee)
            continue
        (board.left if _is_out(record) else board.inside).append(record)
        if record.late:
            board.late.append(record)
    return board


def _is_out(record: AttendanceRecord) -> bool:
    from attendance.models import AttendanceEvent

    last = (AttendanceEvent.objects.filter(employee_id=record.employee_id, day=record.date)
            .exclude(kind=AttendanceEvent.Kind.REPEAT).order_by("-at", "-pk").first())
    return last is not None and last.kind == AttendanceEvent.Kind.CHECK_OUT


@dataclass
class SheetRow:
    employee: Employee
    letters: list[str]
    totals: dict[str, int]
    worked_hours: float


@dataclass
class MonthSheet:
    year: int
    month: int
    days: list[dt.date]
    rows: list[SheetRow]
    daily_rate: list[float]      # share of due employees present (P, L, H) per day
    weekly_late: list[tuple[str, int]]


def month_sheet(user: AbstractBaseUser, *, year: int, month: int, department_id: int | None = None) -> MonthSheet:
    days = [dt.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    records = {(r.employee_id, r.date): r for r in records_for(user, start=days[0], end=days[-1], department_id=department_id)}
    rows = []
    for employee in employees_for(user, department_id=department_id):
        letters, totals, worked = [], {letter: 0 for letter in "PLHAVO"}, 0
        for day in days:
            record = records.get((employee.pk, day))
            letter = LETTERS.get(record.status, "") if record else ""
            letters.append(letter)
            if letter in totals:
                totals[letter] += 1
            worked += record.worked_seconds if record else 0
        rows.append(SheetRow(employee=employee, letters=letters, totals=totals, worked_hours=round(worked / 3600, 2)))
    daily_rate = []
    for index, _ in enumerate(days):
        column = [row.letters[index] for row in rows if row.letters[index] not in ("", "O")]
        daily_rate.append(round(sum(letter in "PLH" for letter in column) / len(column), 3) if column else 0.0)
    weekly: dict[str, int] = {}
    for row in rows:
        for day, letter in zip(days, row.letters):
            week = f"W{day.isocalendar().week}"
            weekly[week] = weekly.get(week, 0) + (letter == "L")
    for day in days:
        weekly.setdefault(f"W{day.isocalendar().week}", 0)
    return MonthSheet(year, month, days, rows, daily_rate, sorted(weekly.items(), key=lambda kv: int(kv[0][1:])))


def recognitions_for(user: AbstractBaseUser | AnonymousUser, *, device_id: int | None = None,
                     limit: int = 50) -> list[RecognitionLog]:
    """The latest monitor history ``user`` may see: every unknown face, and recognitions of the
    employees they may see (the same rule the live monitor applies to each event)."""
    entries = RecognitionLog.objects.filter(state=RecognitionLog.State.DONE).select_related("employee", "device")
    if not is_admin(user):
        entries = entries.filter(Q(employee__isnull=True) | Q(employee__in=visible_employees(user)))
    if device_id is not None:
        entries = entries.filter(device_id=device_id)
    return list(entries[:limit])


def device_statuses() -> list[tuple[Device, bool]]:
    """Every active device and whether it was heard from within the offline timeout."""
    quiet_since = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_DEVICE_OFFLINE_SECONDS)
    return [(device, device.last_seen_at is not None and device.last_seen_at >= quiet_since)
            for device in Device.objects.filter(is_active=True)]
