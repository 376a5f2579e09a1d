"""Which past days still need the nightly close: the catch-up after nights the portal was off."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max
from django.utils import timezone

from attendance.days import attendance_close_day
from attendance.models import AttendanceRecord, ClosedDay


def days_to_close(*, today: dt.date, max_days: int = 31) -> list[dt.date]:
    """Yesterday, every earlier day (up to ``max_days`` back) after the last day that was closed,
    and every past day holding a record that is still open. A site that never closed a day
    starts with yesterday (no absences are invented for days before it used RollCall)."""
    yesterday = today - dt.timedelta(days=1)
    earliest = today - dt.timedelta(days=max_days)
    days = {yesterday}
    last_closed = ClosedDay.objects.filter(date__gte=earliest, date__lt=today).aggregate(last=Max("date"))["last"]
    if last_closed is not None:
        day = last_closed + dt.timedelta(days=1)
        while day < yesterday:
            days.add(day)
            day += dt.timedelta(days=1)
    days.update(AttendanceRecord.objects.filter(settled_at__isnull=True, date__gte=earliest, date__lt=today)
                .values_list("date", flat=True).distinct())
    return sorted(days)


def attendance_close_overdue(*, today: dt.date | None = None, max_days: int = 31) -> dict[str, int]:
    """Close yesterday and any earlier day a missed night left open; returns day -> records settled."""
    today = today or timezone.localdate()
    return {day.isoformat(): attendance_close_day(day=day) for day in days_to_close(today=today, max_days=max_days)}
