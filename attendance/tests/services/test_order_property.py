"""Arrival order, day closing and reports, as a property: random event sets for several employees over
several days around the Berlin DST changes, applied in capture order vs shuffled vs with day closes
interleaved; the resulting records, event kinds, month sheet and CSV must be identical."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from attendance.exports import records_csv, sheet_csv
from attendance.models import AttendanceEvent, AttendanceRecord, Holiday, HolidayList, Shift, ShiftAssignment
from attendance.selectors import period_sheet, records_for, today_board
from attendance.services import attendance_check, attendance_close_day
from attendance.services_close import days_to_close
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db
UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
PERIODS = {"spring": [dt.date(2026, 3, 26) + dt.timedelta(days=i) for i in range(6)],   # DST starts Sun 29 Mar
           "autumn": [dt.date(2026, 10, 22) + dt.timedelta(days=i) for i in range(6)]}  # DST ends Sun 25 Oct


@pytest.fixture()
def site(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 120
    hol = HolidayList.objects.create(name="H")
    for period in PERIODS.values():
        Holiday.objects.create(holiday_list=hol, date=period[1], name="Holiday")
    team = Department.objects.create(name="Ops")
    day = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4],
                               holiday_list=hol)
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4, 5, 6])
    late = Shift.objects.create(name="Late", start=dt.time(1, 30), end=dt.time(3, 30), working_days=[0, 1, 2, 3, 4, 5, 6])
    ShiftAssignment.objects.create(shift=day, department=team, valid_from=dt.date(2026, 1, 1))
    emps = [Employee.objects.create(code=c, full_name=n, department=team) for c, n in
            (("A", "Ana Day"), ("B", "Ben Night"), ("C", "Cy NoShift"), ("D", "Dee Late"))]
    ShiftAssignment.objects.create(shift=night, employee=emps[1], valid_from=dt.date(2026, 1, 1))
    Employee.objects.filter(pk=emps[2].pk).update(department=None)
    emps[2].refresh_from_db()
    ShiftAssignment.objects.create(shift=late, employee=emps[3], valid_from=dt.date(2026, 1, 1))
    admin = User.objects.create_superuser("root", password="x")
    return emps, admin


def local(day: dt.date, h: int, m: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(h, m, s), tzinfo=BERLIN).astimezone(UTC)


def gen_events(rng: random.Random, emps, days) -> list[tuple[Employee, dt.datetime]]:
    events = []
    for e in emps:
        for d in days:
            if rng.random() < 0.2:
                continue
            base = {"A": (9, 0), "B": (22, 0), "C": (10, 0), "D": (1, 30)}[e.code]
            t = local(d, *base) + dt.timedelta(minutes=rng.randint(-30, 40))
            for _ in range(rng.randint(1, 4)):
                events.append((e, t))
                r = rng.random()
                if r < 0.15:
                    events.append((e, t))  # exact duplicate (another key)
                elif r < 0.3:
                    events.append((e, t + dt.timedelta(seconds=rng.randint(1, 130))))  # near duplicate
                t += dt.timedelta(minutes=rng.randint(30, 300))
            if rng.random() < 0.3:  # noise around local midnight
                events.append((e, local(d, 23, 59, 0) + dt.timedelta(seconds=rng.randint(0, 180))))
    return events


def state(emps, admin, days):
    records = sorted((r.employee.code, r.date, r.first_in, r.last_out, r.worked_seconds, r.status, r.late, r.early_exit,
                      r.missing_checkout, r.corrected, r.needs_review)
                     for r in AttendanceRecord.objects.select_related("employee"))
    kinds = sorted((e.employee.code, e.at, e.day, e.kind) for e in AttendanceEvent.objects.select_related("employee"))
    sheet = period_sheet(admin, start=days[0], end=days[-1])
    sheet_rows = [(row.employee.code, row.letters, row.totals, row.worked_seconds) for row in sheet.rows]
    csv_sheet = sheet_csv(sheet)
    csv_records = records_csv(records_for(admin, start=days[0], end=days[-1] + dt.timedelta(days=1)))
    boards = []
    for d in days:
        b = today_board(admin, day=d)
        boards.append((d, sorted(r.employee.code for r in b.inside), sorted(r.employee.code for r in b.left),
                       sorted(e.code for e in b.not_yet_in), sorted(r.employee.code for r in b.absent),
                       sorted(e.code for e in b.off)))
    return {"records": records, "kinds": kinds, "sheet": sheet_rows, "csv_sheet": csv_sheet, "csv": csv_records,
            "boards": boards}


def wipe():
    AttendanceEvent.objects.all().delete()
    AttendanceRecord.objects.all().delete()


def close_all(days):
    for d in days + [days[-1] + dt.timedelta(days=1)]:
        attendance_close_day(day=d)


def nightly_catch_up(days):
    """What the nightly job would do a day after the period: days_to_close() on the period."""
    today = days[-1] + dt.timedelta(days=2)
    for d in days_to_close(today=today, max_days=(today - days[0]).days):
        attendance_close_day(day=d)


def run_scenario(name, rng, events, days):
    wipe()
    if name == "sorted_then_close":
        for e, t in sorted(events, key=lambda p: p[1]):
            attendance_check(employee=e, at=t)
        close_all(days)
    elif name == "shuffled_then_close":
        order = events[:]
        rng.shuffle(order)
        for e, t in order:
            attendance_check(employee=e, at=t)
        close_all(days)
    elif name == "realtime_with_nightly_close":
        # In capture order, the nightly close of day D runs at D+1 00:15 local (as scheduled).
        closes = [(local(d + dt.timedelta(days=1), 0, 15), None, d) for d in days]
        timeline = sorted([(t, e, None) for e, t in events] + closes, key=lambda p: p[0])
        for t, e, d in timeline:
            if e is None:
                attendance_close_day(day=d)
            else:
                attendance_check(employee=e, at=t)
        attendance_close_day(day=days[-1] + dt.timedelta(days=1))
    elif name == "shuffled_with_closes_and_catch_up":
        order = [("ev", e, t) for e, t in events] + [("close", None, d) for d in days] * 2
        rng.shuffle(order)
        for what, e, x in order:
            if what == "close":
                attendance_close_day(day=x)
            else:
                attendance_check(employee=e, at=x)
        nightly_catch_up(days)
    elif name == "shuffled_with_closes_no_catch_up":
        order = [("ev", e, t) for e, t in events] + [("close", None, d) for d in days + [days[-1] + dt.timedelta(days=1)]]
        rng.shuffle(order)
        for what, e, x in order:
            if what == "close":
                attendance_close_day(day=x)
            else:
                attendance_check(employee=e, at=x)
    else:
        raise AssertionError(name)


def diff(a, b):
    out = {}
    for key in a:
        if a[key] != b[key]:
            if isinstance(a[key], list):
                out[key] = ([x for x in a[key] if x not in b[key]], [x for x in b[key] if x not in a[key]])
            else:
                out[key] = (a[key], b[key])
    return out


@pytest.mark.parametrize("period", sorted(PERIODS))
@pytest.mark.parametrize("seed", range(6))
def test_arrival_order_and_closing_give_the_same_days(site, period, seed):
    emps, admin = site
    days = PERIODS[period]
    rng = random.Random(seed * 100 + len(period))
    events = gen_events(rng, emps, days)
    run_scenario("sorted_then_close", rng, events, days)
    reference = state(emps, admin, days)
    for name in ("shuffled_then_close", "realtime_with_nightly_close", "shuffled_with_closes_and_catch_up"):
        run_scenario(name, random.Random(seed), events, days)
        got = state(emps, admin, days)
        assert not diff(reference, got), f"{name}: {diff(reference, got)}"


@pytest.mark.parametrize("seed", range(3))
def test_strict_shuffled_closes_without_catch_up(site, seed):
    """Each day closed exactly once at a random point; events after the close of their day."""
    emps, admin = site
    days = PERIODS["autumn"]
    events = gen_events(random.Random(seed), emps, days)
    run_scenario("sorted_then_close", random.Random(seed), events, days)
    reference = state(emps, admin, days)
    run_scenario("shuffled_with_closes_no_catch_up", random.Random(seed), events, days)
    got = state(emps, admin, days)
    assert not diff(reference, got), diff(reference, got)
