"""The in-process scheduler of the embedded default: runs django-celery-beat's periodic tasks
(every enabled crontab entry: the nightly "Close yesterday's attendance" and "Nightly learning")
inside the portal server when there is no broker,
so no celery beat or worker is needed.

It reads the same database schedule an admin sees and edits under Periodic tasks (enabled flag,
crontab and its time zone) and runs the same task function through the dispatch seam. Several
portal processes may run it: a run is claimed by a compare-and-set of the periodic task's
``last_run_at``, so each due time is processed by exactly one of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

POLL_SECONDS = 300.0  # re-read the schedule at least this often (an admin may change it)
START_DELAY_SECONDS = 5.0

_started = threading.Event()
_stop = threading.Event()


def run_due(*, since: dt.datetime) -> list[str]:
    """Run every enabled periodic task that is due (its next time after ``last_run_at``, or after
    ``since`` if it never ran, has passed); returns the names of those this process ran."""
    from django_celery_beat.models import PeriodicTask

    from recognition.jobs import run_in_process

    ran = []
    for entry in PeriodicTask.objects.filter(enabled=True).exclude(task__startswith="celery."):
        due, _ = entry.schedule.is_due(entry.last_run_at or since)
        if not due:
            continue
        now = timezone.now()
        # The claim: of processes that saw the same last_run_at, exactly one moves it on.
        if not PeriodicTask.objects.filter(pk=entry.pk, last_run_at=entry.last_run_at).update(
                last_run_at=now, total_run_count=F("total_run_count") + 1, date_changed=now):
            continue
        try:
            result = run_in_process(entry.task, *json.loads(entry.args or "[]"), **json.loads(entry.kwargs or "{}"))
            logger.info("scheduled %s (%s): %s", entry.name, entry.task, result)
        except Exception:
            logger.exception("scheduled %s (%s) failed", entry.name, entry.task)
        ran.append(entry.name)
    return ran


# The built-in nightly entries (their migrations create them) run in site time: 00:15 and 02:00.
SITE_TIME_ENTRIES = ("Close yesterday's attendance", "Nightly learning")


def follow_site_time_zone(**kwargs: object) -> list[str]:
    """Move the built-in nightly entries onto the site's time zone (``TIME_ZONE``) when their
    crontab carries another one (the database was migrated before the zone was set, or the zone
    changed). Runs after every ``migrate`` (post_migrate). Their hour and minute stay; a crontab
    shared with another entry is left as it is (the entry gets its own). Returns the names moved."""
    from django.db import connections
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    using = kwargs.get("using") or "default"
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return []  # a partial migrate (``migrate portal`` on a new database): beat's tables come later
    zone = settings.TIME_ZONE
    moved = []
    entries = PeriodicTask.objects.using(using).filter(name__in=SITE_TIME_ENTRIES, crontab__isnull=False)
    for entry in entries.select_related("crontab"):
        crontab = entry.crontab
        if str(crontab.timezone) == zone:
            continue
        entry.crontab, _ = CrontabSchedule.objects.using(using).get_or_create(
            minute=crontab.minute, hour=crontab.hour, day_of_week=crontab.day_of_week,
            day_of_month=crontab.day_of_month, month_of_year=crontab.month_of_year, timezone=zone)
        entry.save(update_fields=["crontab"])  # the model's save also tells beat the schedule changed
        moved.append(entry.name)
    if moved:
        logger.info("nightly entries moved to the site's time zone %s: %s", zone, ", ".join(moved))
    return moved


def seconds_to_next(*, since: dt.datetime) -> float:
    """How long until the earliest enabled periodic task is due (at most POLL_SECONDS)."""
    from django_celery_beat.models import PeriodicTask

    wait = POLL_SECONDS
    for entry in PeriodicTask.objects.filter(enabled=True).exclude(task__startswith="celery."):
        _, next_seconds = entry.schedule.is_due(entry.last_run_at or since)
        wait = min(wait, max(1.0, float(next_seconds)))
    return wait


def _loop() -> None:
    since = timezone.now()
    if _stop.wait(START_DELAY_SECONDS):
        return
    while not _stop.is_set():
        wait = POLL_SECONDS
        try:
            close_old_connections()
            run_due(since=since)
            wait = seconds_to_next(since=since)
        except Exception:
            logger.exception("the in-process scheduler failed; retrying in %.0f s", POLL_SECONDS)
        finally:
            close_old_connections()
        _stop.wait(wait)


def _is_server_process() -> bool:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program in ("daphne", "uvicorn", "gunicorn") or sys.argv[0].endswith(("daphne/__main__.py", "uvicorn/__main__.py")):
        return True
    # runserver: only in the autoreloader's child (or without the reloader), never in the parent.
    return "runserver" in sys.argv and (os.environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv)


def should_start() -> bool:
    if settings.ROLLCALL_SCHEDULER == "on":
        return True
    return settings.ROLLCALL_SCHEDULER == "auto" and settings.ROLLCALL_TASKS_IN_PROCESS and _is_server_process()


def start() -> bool:
    """Start the scheduler thread once per process (a daemon: it dies with the server)."""
    if _started.is_set():
        return False
    _started.set()
    threading.Thread(target=_loop, name="rollcall-scheduler", daemon=True).start()
    logger.info("in-process scheduler started (periodic tasks run in this process)")
    return True
