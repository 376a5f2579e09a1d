"""Writes about the attendance rules an admin sets up: shifts, shift assignments, holiday lists
and holidays (the portal's /manage/ pages and the Django admin call these)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from attendance.models import Holiday, HolidayList, Shift, ShiftAssignment
from portal.models import Department, Employee

SHIFT_FIELDS = ("name", "start", "end", "late_grace_minutes", "early_exit_grace_minutes", "half_day_below_hours",
                "absent_below_hours", "working_days", "holiday_list", "checkout_after_end_minutes")


def _working_days(days: list[int] | list[str]) -> list[int]:
    values = sorted({int(day) for day in days})
    if any(day < 0 or day > 6 for day in values):
        raise ValueError("working days are weekday numbers, Monday = 0 ... Sunday = 6")
    return values


def shift_create(*, name: str, start: dt.time, end: dt.time, working_days: list[int],
                 late_grace_minutes: int = 10, early_exit_grace_minutes: int = 10, half_day_below_hours: float = 4.0,
                 absent_below_hours: float = 1.0, holiday_list: HolidayList | None = None,
                 checkout_after_end_minutes: int = 240) -> Shift:
    with transaction.atomic():
        return Shift.objects.create(
            name=name.strip(), start=start, end=end, working_days=_working_days(working_days),
            late_grace_minutes=late_grace_minutes, early_exit_grace_minutes=early_exit_grace_minutes,
            half_day_below_hours=half_day_below_hours, absent_below_hours=absent_below_hours,
            holiday_list=holiday_list, checkout_after_end_minutes=checkout_after_end_minutes)


def shift_update(*, shift: Shift, **fields: object) -> Shift:
    """Change a shift's rules; records already closed keep their status (close or correct again)."""
    unknown = set(fields) - set(SHIFT_FIELDS)
    if unknown:
        raise ValueError(f"not shift fields: {sorted(unknown)}")
    if "working_days" in fields:
        fields["working_days"] = _working_days(fields["working_days"])  # type: ignore[arg-type]
    with transaction.atomic():
        for name, value in fields.items():
            setattr(shift, name, value)
        shift.save()
    return shift


def shift_delete(*, shift: Shift) -> None:
    with transaction.atomic():
        shift.delete()


def shift_assignment_create(*, shift: Shift, valid_from: dt.date, employee: Employee | None = None,
                            department: Department | None = None, valid_to: dt.date | None = None) -> ShiftAssignment:
    """A shift for one employee or a whole department (exactly one of them) from ``valid_from``."""
    if (employee is None) == (department is None):
        raise ValueError("Assign the shift to an employee or to a department (one of them).")
    if valid_to is not None and valid_to < valid_from:
        raise ValueError("The assignment ends before it starts.")
    with transaction.atomic():
        return ShiftAssignment.objects.create(shift=shift, employee=employee, department=department,
                                              valid_from=valid_from, valid_to=valid_to)


def shift_assignment_update(*, assignment: ShiftAssignment, valid_to: dt.date | None) -> ShiftAssignment:
    """End (or reopen) an assignment."""
    if valid_to is not None and valid_to < assignment.valid_from:
        raise ValueError("The assignment ends before it starts.")
    with transaction.atomic():
        assignment.valid_to = valid_to
        assignment.save(update_fields=["valid_to"])
    return assignment


def shift_assignment_delete(*, assignment: ShiftAssignment) -> None:
    with transaction.atomic():
        assignment.delete()


def holiday_list_create(*, name: str) -> HolidayList:
    with transaction.atomic():
        return HolidayList.objects.create(name=name.strip())


def holiday_list_delete(*, holiday_list: HolidayList) -> None:
    """Its holidays go with it; shifts that used it keep working without holidays."""
    with transaction.atomic():
        holiday_list.delete()


def holiday_add(*, holiday_list: HolidayList, date: dt.date, name: str) -> Holiday:
    """Add a holiday, or rename the one the list already has on ``date``."""
    with transaction.atomic():
        holiday, _ = Holiday.objects.update_or_create(holiday_list=holiday_list, date=date,
                                                      defaults={"name": name.strip()})
    return holiday


def holiday_delete(*, holiday: Holiday) -> None:
    with transaction.atomic():
        holiday.delete()
