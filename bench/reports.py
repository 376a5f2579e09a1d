"""What a large site's reports cost: the today board, the month sheet and its exports, the records
API and the face gallery page, for a site of N people, through RollCall's own views.

    .venv/bin/python bench/reports.py [--people 1000] [--days 22] [--json FILE]

A throw-away SQLite database (the embedded default; under var/bench/reports/) is seeded with N
active employees in departments of 50 (each with its manager), on day (09-17), late (14-22) and
night (22-06) shifts, and ``--days`` working days up to yesterday: each day's records as the rules
leave them (in and out times, late, early, absent, missing check-outs, a few corrections), bulk
written. The last two days go through ``attendance.services.attendance_check`` for real (every
event), and the night shift checked in yesterday at 22:00, so the today board sees people still on
last night's shift when it is read after midnight (it is read "as at" 00:30 and 12:00 today).

Each page and export is requested through Django's test client as an admin (everyone) and as one
department's manager (50 people), and timed (median of ``--repeat``) with its SQL query count. The
figures to watch: queries that do not grow with the number of people, and seconds that grow at
most linearly (the XLSX export was quadratic: 247 s for 1,000 people before it counted its rows).
No face models are loaded (the gallery page reads the active embedder from the shared cache).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "bench" / "reports"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["ROLLCALL_VAR_DIR"] = str(VAR)
os.environ["MEDIA_ROOT"] = str(VAR / "media")
os.environ["ROLLCALL_SCHEDULER"] = "off"
os.environ["ROLLCALL_THROTTLE_USER"] = "off"


def seed(people: int, days: int) -> dict[str, object]:
    """The site (see the module docstring); returns the users and days the measurements need."""
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone
    from tqdm import tqdm

    from attendance.models import AttendanceRecord, Shift, ShiftAssignment
    from attendance.services import attendance_check, attendance_close_day, attendance_correct
    from portal.models import Department, Employee
    from recognition.engine import _remember_identity

    rng = random.Random(7)
    zone = timezone.get_current_timezone()
    today = timezone.localdate()
    workdays = []
    day = today - dt.timedelta(days=1)
    while len(workdays) < days:
        if day.weekday() < 5:
            workdays.append(day)
        day -= dt.timedelta(days=1)
    workdays.reverse()
    every_day = [0, 1, 2, 3, 4, 5, 6]
    shifts = [Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=every_day),
              Shift.objects.create(name="Late", start=dt.time(14), end=dt.time(22), working_days=every_day),
              Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=every_day)]
    admin = User.objects.create_user("bench-admin")
    Employee.objects.create(user=admin, code="ADMIN", full_name="Bench Admin", role=Employee.Role.ADMIN)
    departments = [Department.objects.create(name=f"Department {n + 1:03d}") for n in range((people + 49) // 50)]
    for index, department in enumerate(departments):
        shift = shifts[0] if index % 5 < 3 else shifts[1] if index % 5 == 3 else shifts[2]
        ShiftAssignment.objects.create(shift=shift, department=department, valid_from=workdays[0] - dt.timedelta(days=40))
    manager_users = User.objects.bulk_create([User(username=f"manager-{n:03d}") for n in range(len(departments))])
    rows = []
    for n in range(people):
        department = departments[n // 50]
        manager = n % 50 == 0
        rows.append(Employee(code=f"E{n:05d}", full_name=f"Person {n:05d}", department=department,
                             role=Employee.Role.MANAGER if manager else Employee.Role.EMPLOYEE,
                             user=manager_users[n // 50] if manager else None, biometric_consent_at=timezone.now()))
    staff = Employee.objects.bulk_create(rows)
    shift_of = {department.pk: ShiftAssignment.objects.get(department=department).shift for department in departments}
    bulk_days, real_days = workdays[:-2], workdays[-2:]
    records = []
    for day in tqdm(bulk_days, desc="records (bulk)", unit="day"):
        for person in staff:
            shift = shift_of[person.department_id]
            start = dt.datetime.combine(day, shift.start, tzinfo=zone)
            if rng.random() < 0.05:
                records.append(AttendanceRecord(employee=person, date=day, status=AttendanceRecord.Status.ABSENT,
                                                settled_at=timezone.now()))
                continue
            first_in = start + dt.timedelta(minutes=rng.gauss(-6, 8))
            last_out = start + dt.timedelta(hours=8, minutes=rng.gauss(6, 12))
            missing = rng.random() < 0.04
            late = first_in > start + dt.timedelta(minutes=10)
            records.append(AttendanceRecord(
                employee=person, date=day, first_in=first_in, last_out=None if missing else last_out,
                worked_seconds=0 if missing else int((last_out - first_in).total_seconds()),
                status=AttendanceRecord.Status.LATE if late else AttendanceRecord.Status.PRESENT, late=late,
                missing_checkout=missing, settled_at=timezone.now()))
    AttendanceRecord.objects.bulk_create(records, batch_size=2000)
    for day in real_days:
        with transaction.atomic():
            for person in tqdm(staff, desc=f"check-ins {day}", unit="person", leave=False):
                shift = shift_of[person.department_id]
                start = dt.datetime.combine(day, shift.start, tzinfo=zone)
                attendance_check(employee=person, at=start + dt.timedelta(minutes=rng.gauss(-5, 8)), source="device:Door")
                if day != real_days[-1] or shift.name != "Night":  # last night's shift is still on
                    attendance_check(employee=person, at=start + dt.timedelta(hours=8, minutes=rng.gauss(5, 10)),
                                     source="device:Door")
        attendance_close_day(day=day)
    for record in AttendanceRecord.objects.filter(first_in__isnull=False).order_by("?")[:25]:
        attendance_correct(record=record, changed_by=admin, reason="bench correction",
                           last_out=record.first_in + dt.timedelta(hours=8))
    _remember_identity("fused", "bench", 0.5)  # as a worker that built the pipeline leaves it
    return {"admin": admin, "manager": manager_users[0], "today": today, "workdays": workdays,
            "employee": staff[1].pk}


def measure(site: dict[str, object], repeat: int) -> list[dict[str, object]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from attendance.selectors import today_board

    today, workdays = site["today"], site["workdays"]
    month = workdays[len(workdays) // 2].strftime("%Y-%m")  # a month full of records
    start, end = workdays[0].isoformat(), workdays[-1].isoformat()
    pages = [("today board", "/reports/today/"), ("month page", f"/reports/month/?month={month}"),
             ("month CSV", f"/reports/export.csv?month={month}"), ("month XLSX", f"/reports/export.xlsx?month={month}"),
             ("records API CSV", f"/api/v1/attendance/records?from={start}&to={end}&export=csv"),
             ("month API", f"/api/v1/attendance/month?month={month}"),
             ("history", f"/people/{site['employee']}/attendance/"),
             ("face gallery", f"/people/{site['employee']}/faces/"), ("monitor", "/monitor/")]
    results = []
    for role in ("admin", "manager"):
        client = Client()
        client.force_login(site[role])
        for name, path in pages:
            seconds, queries = [], 0
            for _ in range(repeat):
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    response = client.get(path)
                    seconds.append(time.perf_counter() - began)
                assert response.status_code == 200, (path, response.status_code)
                queries = len(captured)
            results.append({"what": name, "role": role, "seconds": round(statistics.median(seconds), 3),
                            "queries": queries, "bytes": len(response.content)})
        for label, hour in (("board at 00:30", dt.time(0, 30)), ("board at 12:00", dt.time(12))):
            now = dt.datetime.combine(today, hour, tzinfo=timezone.get_current_timezone())
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                board = today_board(site[role], now=now)
                took = time.perf_counter() - began
            results.append({"what": label, "role": role, "seconds": round(took, 3), "queries": len(captured),
                            "bytes": 0, "in": len(board.inside), "not_yet_in": len(board.not_yet_in)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--days", type=int, default=22, help="working days of records up to yesterday")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    import logging
    import warnings

    import django

    django.setup()
    logging.disable(logging.INFO)  # the login handler's lines per request
    warnings.filterwarnings("ignore", message="No directory at")  # no collected static files here
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    site = seed(args.people, args.days)
    print(f"seeded {args.people} people x {args.days} working days in {time.perf_counter() - began:.0f} s")
    results = measure(site, args.repeat)
    print(f"\n{'what':<18} {'role':<8} {'seconds':>8} {'queries':>8} {'KB':>8}")
    for row in results:
        extra = f"  in {row['in']}, not yet in {row['not_yet_in']}" if "in" in row else ""
        print(f"{row['what']:<18} {row['role']:<8} {row['seconds']:>8.3f} {row['queries']:>8} "
              f"{row['bytes'] / 1024:>8.0f}{extra}")
    if args.json:
        args.json.write_text(json.dumps({"people": args.people, "days": args.days, "results": results}, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
