"""Celery tasks of the attendance app (thin: each calls one service)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from attendance.services import attendance_close_day


@shared_task(name="attendance.close_yesterday")
def close_yesterday() -> dict[str, object]:
    """Nightly (django-celery-beat): settle yesterday's records, marking absences and holidays."""
    day = timezone.localdate() - dt.timedelta(days=1)
    return {"day": day.isoformat(), "settled": attendance_close_day(day=day)}
