"""The embedded default's in-process scheduler, for real: two Daphne processes on one SQLite
database (no broker, no celery beat) both start it; the nightly job that is due runs once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recognition.tests.integration.test_production_stack import _free_port, _wait_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_two_portal_processes_run_a_due_nightly_job_exactly_once(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))},
           "ROLLCALL_VAR_DIR": str(tmp_path / "var"), "MEDIA_ROOT": str(tmp_path / "media")}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    staged = tmp_path / "media" / "staging" / "left-by-a-crash.bin"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"x")
    os.utime(staged, (time.time() - 7200, time.time() - 7200))
    database = tmp_path / "var" / "rollcall.sqlite3"
    with sqlite3.connect(database) as db:  # the portal was down last night: the job is overdue
        db.execute("UPDATE django_celery_beat_periodictask SET last_run_at = datetime('now', '-2 days') "
                   "WHERE task = 'attendance.close_yesterday'")
    processes, logs = [], []
    try:
        for index in range(2):
            port, log = _free_port(), tmp_path / f"portal{index}.log"
            with open(log, "ab") as handle:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
                    cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True))
            logs.append(log)
            _wait_port(port, 90, processes[-1])
        deadline = time.monotonic() + 90
        while staged.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # both schedulers had their look
        texts = [log.read_text(errors="replace") for log in logs]
        assert all("in-process scheduler started" in text for text in texts), texts
        assert sum(text.count("scheduled Close yesterday's attendance") for text in texts) == 1, texts
        assert not staged.exists()
        with sqlite3.connect(database) as db:
            count, last = db.execute("SELECT total_run_count, last_run_at FROM django_celery_beat_periodictask "
                                     "WHERE task = 'attendance.close_yesterday'").fetchone()
        assert count == 1 and last > time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3600))
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)


def test_the_nightly_entries_follow_a_time_zone_set_after_the_first_migrate(tmp_path: Path) -> None:
    """`.ci/start` migrates before an operator sets TIME_ZONE: the next `migrate` moves the two
    built-in nightly entries to the site's zone (same hour and minute), leaving other entries be."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "TIME_ZONE"))},
           "ROLLCALL_VAR_DIR": str(tmp_path / "var"), "MEDIA_ROOT": str(tmp_path / "media")}
    database = tmp_path / "var" / "rollcall.sqlite3"
    query = ("SELECT t.name, c.hour, c.minute, c.timezone FROM django_celery_beat_periodictask t "
             "JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id ORDER BY t.name")
    # A partial first migrate (beat's tables not there yet) must not trip over the post_migrate step.
    subprocess.run([sys.executable, "manage.py", "migrate", "portal", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    with sqlite3.connect(database) as db:
        assert {zone for *_, zone in db.execute(query)} == {"UTC"}
        db.execute("INSERT INTO django_celery_beat_crontabschedule (minute, hour, day_of_week, day_of_month, "
                   "month_of_year, timezone) VALUES ('0', '6', '*', '*', '*', 'UTC')")
        db.execute("INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, total_run_count, "
                   "one_off, headers, priority, description, date_changed, crontab_id) VALUES ('Site report', "
                   "'attendance.close_yesterday', '[]', '{}', 1, 0, 0, '{}', NULL, '', datetime('now'), "
                   "(SELECT max(id) FROM django_celery_beat_crontabschedule))")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env={**env, "TIME_ZONE": "America/Los_Angeles"}, check=True)
    with sqlite3.connect(database) as db:
        rows = list(db.execute(query))
    assert rows == [("Close yesterday's attendance", "0", "15", "America/Los_Angeles"),
                    ("Nightly learning", "2", "0", "America/Los_Angeles"),
                    ("Site report", "6", "0", "UTC")], rows
