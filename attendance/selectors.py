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

from attendance.models import AttendanceEvent, AttendanceRecord, RecognitionLog, Shift
from attendance.services import DayShifts, cutoff_between, day_shifts, may_run_past_midnight
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
    # Deactivated people's past days stay in the reports (payroll needs them); only the living
    # lists (the today board, the sheet's empty rows) are of active employees.
    employees = visible_employees(user)
    if department_id:
        employees = employees.filter(department_id=department_id)
    return (AttendanceRecord.objects.filter(employee__in=employees, date__gte=start, date__lte=end)
            .select_related("employee", "employee__department").order_by("date", "employee__full_name"))


@dataclass
class TodayBoard:
    day: dt.date
    inside: list[AttendanceRecord] = field(default_factory=list)   # "In": checked in, not out
    left: list[AttendanceRecord] = field(default_factory=list)     # "Out": came and went
    late: list[AttendanceRecord] = field(default_factory=list)
    not_yet_in: list[Employee] = field(default_factory=list)       # due today (or without a shift), no check-in yet
    absent: list[AttendanceRecord] = field(default_factory=list)   # settled as absent
    off: list[Employee] = field(default_factory=list)              # their shift does not work today, or on leave/holiday

    @property
    def people(self) -> int:
        return len(self.inside) + len(self.left) + len(self.not_yet_in) + len(self.absent) + len(self.off)


def today_board(user: AbstractBaseUser, *, day: dt.date | None = None, department_id: int | None = None,
                now: dt.datetime | None = None) -> TodayBoard:
    """Who is in, out, not yet in and absent on ``day`` (the site's today, as at ``now``). Without
    shifts the board still works: a person with no shift and no check-in is "not yet in" until the
    day closes. On today's board, a shift that began yesterday and is still on shows its people
    in. A handful of queries whatever the headcount."""
    now = now or timezone.now()
    day = day or timezone.localdate(now)
    board = TodayBoard(day=day)
    records = {r.employee_id: r for r in records_for(user, start=day, end=day, department_id=department_id)}
    shifts = day_shifts(day)
    night = _still_in_from_last_night(user, day=day, department_id=department_id, now=now, today=shifts)
    last = _last_kinds(day, [r for r in records.values() if r.first_in is not None and not r.corrected])
    for employee in employees_for(user, department_id=department_id):
        record = records.get(employee.pk)
        if (record is None or record.first_in is None) and employee.pk in night:
            board.inside.append(night[employee.pk])  # last night's shift is still on and they are in
            continue  # (last night's lateness is last night's board)
        if record is None or record.first_in is None:
            if record is not None and record.status == Status.ABSENT:
                board.absent.append(record)
                continue
            if record is not None and record.status in (Status.ON_LEAVE, Status.HOLIDAY):
                board.off.append(employee)
                continue
            shift = shifts.shift_of(employee)
            if shift is None or shifts.is_working(shift):
                board.not_yet_in.append(employee)
            else:
                board.off.append(employee)
            continue
        # The manager's values stand on a corrected day, else the day's last kept event.
        out = record.last_out is not None if record.corrected else last.get(employee.pk) == AttendanceEvent.Kind.CHECK_OUT
        (board.left if out else board.inside).append(record)
        if record.late:
            board.late.append(record)
    return board


def _last_kinds(day: dt.date, records: list[AttendanceRecord]) -> dict[int, str]:
    """Each of these records' person's last kept (not repeated) event of ``day``: in or out, one query."""
    last: dict[int, str] = {}
    events = (AttendanceEvent.objects.filter(employee_id__in=[r.employee_id for r in records], day=day)
              .exclude(kind=AttendanceEvent.Kind.REPEAT).order_by("employee_id", "-at", "-pk")
              .values_list("employee_id", "kind"))
    for employee_id, kind in events:
        last.setdefault(employee_id, kind)
    return last


def _still_in_from_last_night(user: AbstractBaseUser, *, day: dt.date, department_id: int | None,
                              now: dt.datetime, today: DayShifts) -> dict[int, AttendanceRecord]:
    """On today's board: the records of yesterday's shifts that run past midnight and are still on
    (before the cut-off, attendance.days.overnight_cutoff) of people who have not checked out: they
    are in the building now, although their day is yesterday's. By employee id."""
    if day != timezone.localdate(now) or not any(may_run_past_midnight(shift) for shift in Shift.objects.all()):
        return {}
    previous = day - dt.timedelta(days=1)
    records = list(records_for(user, start=previous, end=previous, department_id=department_id)
                   .filter(first_in__isnull=False, employee__is_active=True, corrected=False))
    last = _last_kinds(previous, records)
    yesterday = day_shifts(previous)
    night = {}
    for record in records:
        shift = yesterday.shift_of(record.employee)
        if last.get(record.employee_id) != AttendanceEvent.Kind.CHECK_IN or shift is None:
            continue
        following = today.shift_of(record.employee)
        cutoff = cutoff_between(shift, previous, following if today.is_working(following) else None)
        if cutoff is not None and now < cutoff:
            night[record.employee_id] = record
    return night


MAX_PERIOD_DAYS = 366  # a report or export covers at most a year (first and last day included: 367 days)
TOTAL_LETTERS = "PLHAVO"
TOTAL_LABELS = {"P": "Present", "L": "Late", "H": "Half day", "A": "Absent", "V": "On leave", "O": "Holiday"}


@dataclass
class SheetCell:
    day: dt.date
    letter: str                         # LETTERS of the record's status; "" without a record
    record: AttendanceRecord | None


@dataclass
class SheetRow:
    employee: Employee
    cells: list[SheetCell]
    totals: dict[str, int]              # days per letter (P L H A V O)
    worked_seconds: int                 # the exact sum of the days' worked seconds

    @property
    def letters(self) -> list[str]:
        return [cell.letter for cell in self.cells]

    @property
    def worked_hours(self) -> float:
        return round(self.worked_seconds / 3600, 2)


@dataclass
class MonthSheet:
    year: int
    month: int
    days: list[dt.date]
    rows: list[SheetRow]
    daily_rate: list[float]      # share of due employees present (P, L, H) per day
    weekly_late: list[tuple[str, int]]

    @property
    def totals(self) -> dict[str, int]:
        """Days per letter over every row (the sheet's footer)."""
        return {letter: sum(row.totals[letter] for row in self.rows) for letter in TOTAL_LETTERS}

    @property
    def worked_seconds(self) -> int:
        """Every row's exact seconds summed (not the rows' rounded figures), so the footer is right."""
        return sum(row.worked_seconds for row in self.rows)


def month_sheet(user: AbstractBaseUser, *, year: int, month: int, department_id: int | None = None) -> MonthSheet:
    days = [dt.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    return period_sheet(user, start=days[0], end=days[-1], department_id=department_id)


def period_sheet(user: AbstractBaseUser, *, start: dt.date, end: dt.date, department_id: int | None = None) -> MonthSheet:
    """The attendance sheet of ``start``..``end``: every active employee ``user`` may see (in the
    department, if given), and every deactivated one with a record in the period; every day, each
    with its record (if any) and totals."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    # The rows come from the people query: records without their employee and department objects
    # (three model objects a record cost a year-long sheet of 1,000 people seconds).
    found = list(records_for(user, start=start, end=end, department_id=department_id).select_related(None))
    records = {(r.employee_id, r.date): r for r in found}
    people = visible_employees(user).filter(Q(is_active=True) | Q(pk__in={r.employee_id for r in found}))
    if department_id:
        people = people.filter(department_id=department_id)
    rows = []
    for employee in people.select_related("department").order_by("full_name"):
        cells, totals, worked = [], {letter: 0 for letter in TOTAL_LETTERS}, 0
        for day in days:
            record = records.get((employee.pk, day))
            letter = LETTERS.get(record.status, "") if record else ""
            cells.append(SheetCell(day, letter, record))
            if letter in totals:
                totals[letter] += 1
            worked += record.worked_seconds if record else 0
        rows.append(SheetRow(employee=employee, cells=cells, totals=totals, worked_seconds=worked))
    daily_rate = []
    for index, _ in enumerate(days):
        column = [row.cells[index].letter for row in rows if row.cells[index].letter not in ("", "O")]
        daily_rate.append(round(sum(letter in "PLH" for letter in column) / len(column), 3) if column else 0.0)
    # Weeks in calendar order: keyed by ISO (year, week), so 1-3 Jan 2027 (week 53 of 2026) come first.
    weekly: dict[tuple[int, int], int] = {}
    for day in days:
        weekly.setdefault(day.isocalendar()[:2], 0)
    for row in rows:
        for cell in row.cells:
            weekly[cell.day.isocalendar()[:2]] += cell.letter == "L"
    return MonthSheet(start.year, start.month, days, rows, daily_rate,
                      [(f"W{week}", late) for (_, week), late in sorted(weekly.items())])


def recognitions_for(user: AbstractBaseUser | AnonymousUser, *, device_id: int | None = None,
                     limit: int = 50) -> list[RecognitionLog]:
    """The latest monitor history ``user`` may see: every unknown face, and recognitions of the
    employees they may see (the same rule the live monitor applies to each event)."""
    entries = RecognitionLog.objects.filter(state=RecognitionLog.State.DONE).select_related("employee", "device")
    admin = is_admin(user)
    if not admin:
        entries = entries.filter(Q(employee__isnull=True) | Q(employee__in=visible_employees(user)))
    if device_id is not None:
        entries = entries.filter(device_id=device_id)
    found = list(entries[:limit])
    for entry in found:
        # An unknown face's score is its closest enrolled person's: admins only (as live). A
        # separate attribute: the stored value is never touched.
        entry.shown_similarity = entry.similarity if admin or entry.employee_id is not None else None
    return found


def device_statuses() -> list[tuple[Device, bool]]:
    """Every active device and whether it was heard from within the offline timeout."""
    quiet_since = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_DEVICE_OFFLINE_SECONDS)
    return [(device, device.last_seen_at is not None and device.last_seen_at >= quiet_since)
            for device in Device.objects.filter(is_active=True)]
