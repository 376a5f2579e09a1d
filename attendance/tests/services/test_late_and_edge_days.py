"""Days that arrive late, days off, overnight rotas, corrections and deactivated people: each
case gives the same answer whatever the order of events, closes and corrections (found by an
order-and-concurrency probe of the attendance rules)."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.contrib.auth.models import User

from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    Holiday,
    HolidayList,
    Shift,
    ShiftAssignment,
)
from attendance.selectors import month_sheet, records_for, today_board
from attendance.services import attendance_check, attendance_close_day, attendance_correct
from attendance.services_close import days_to_close
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db
UTC = dt.UTC
Status = AttendanceRecord.Status


@pytest.fixture()
def team(settings):
    settings.TIME_ZONE = "UTC"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 120
    team = Department.objects.create(name="Ops")
    hol = HolidayList.objects.create(name="H")
    Holiday.objects.create(holiday_list=hol, date=dt.date(2026, 11, 11), name="Holiday")  # a Wednesday
    day = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4], holiday_list=hol)
    ShiftAssignment.objects.create(shift=day, department=team, valid_from=dt.date(2026, 1, 1))
    return team, day


def at(d: int, h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, d, h, m, tzinfo=UTC)


def snap(r: AttendanceRecord) -> tuple:
    return r.first_in, r.last_out, r.worked_seconds, r.status, r.late, r.early_exit, r.missing_checkout


# 1. A late event for a day already closed, where the employee had no record (weekly day off, no
#    shift), settles at once, as it would have before the close (not "open" until the next night).
def test_a_late_event_for_a_day_closed_without_their_record_settles_as_in_order(team) -> None:
    noshift = Employee.objects.create(code="C", full_name="Cy NoShift")
    weekend = Employee.objects.create(code="A", full_name="Ana Day", department=team[0])
    # In order: the events arrive before the close of Sat 14 Nov.
    for e in (noshift, weekend):
        attendance_check(employee=e, at=at(14, 10))
        attendance_check(employee=e, at=at(14, 11))
        attendance_check(employee=e, at=at(14, 15))  # forgot to check out after this
    attendance_close_day(day=dt.date(2026, 11, 14))
    in_order = {e.code: snap(AttendanceRecord.objects.get(employee=e)) for e in (noshift, weekend)}
    AttendanceEvent.objects.all().delete(), AttendanceRecord.objects.all().delete()
    # Late: the close ran first, the door's queue delivers afterwards.
    attendance_close_day(day=dt.date(2026, 11, 14))
    for e in (noshift, weekend):
        attendance_check(employee=e, at=at(14, 10))
        attendance_check(employee=e, at=at(14, 11))
        attendance_check(employee=e, at=at(14, 15))  # forgot to check out after this
    late = {e.code: snap(AttendanceRecord.objects.get(employee=e)) for e in (noshift, weekend)}
    assert in_order["C"][3] == Status.PRESENT and in_order["A"][3] == Status.PRESENT and in_order["A"][6]
    assert late == in_order, f"late delivery after the close: {late} != in order: {in_order}"


# 2. The nightly close (00:15) leaves an overnight shift's day open while the shift is running: not
#    absent with a missing check-out, and the on-time check-out is no "late event".
def test_the_nightly_close_leaves_a_running_overnight_shift_open(team) -> None:
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4, 5, 6])
    nina = Employee.objects.create(code="N", full_name="Nina Night", department=team[0])
    ShiftAssignment.objects.create(shift=night, employee=nina, valid_from=dt.date(2026, 1, 1))
    attendance_check(employee=nina, at=at(12, 21, 55))
    with mock.patch("attendance.days.timezone.now", return_value=at(13, 0, 15)):
        attendance_close_day(day=dt.date(2026, 11, 12))  # the scheduled job at 00:15 on the 13th
    record = AttendanceRecord.objects.get(employee=nina, date=dt.date(2026, 11, 12))
    during_shift = (record.status, record.missing_checkout, record.settled_at)
    with mock.patch("attendance.days.timezone.now", return_value=at(13, 6, 5)):
        attendance_check(employee=nina, at=at(13, 6, 5))  # on time, delivered at once
    audits = list(AttendanceCorrection.objects.filter(record=record).values_list("reason", flat=True))
    assert (during_shift, audits) == ((Status.OPEN, False, None), []), (
        f"at 00:15, inside her shift, the day reads {during_shift}; on-time check-out audited: {audits}")
    # The next night's catch-up lists the day again and settles it as worked.
    assert dt.date(2026, 11, 12) in days_to_close(today=dt.date(2026, 11, 14))
    attendance_close_day(day=dt.date(2026, 11, 12))
    record.refresh_from_db()
    assert record.settled_at is not None and record.worked_seconds == 8 * 3600 + 10 * 60 and not record.missing_checkout


# 3. Shift rotation: the morning after a night-shift period, the day shift's check-in counts for its
#    own day (the overnight window is split halfway to the day shift's start).
def test_first_day_shift_after_a_night_shift_period(team) -> None:
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4, 5, 6])
    rota = Employee.objects.create(code="R", full_name="Rota", department=team[0])  # department's Day shift
    ShiftAssignment.objects.create(shift=night, employee=rota, valid_from=dt.date(2026, 11, 1), valid_to=dt.date(2026, 11, 15))
    # Monday 16 Nov, back on the department's 09:00-17:00 shift.
    attendance_check(employee=rota, at=at(16, 9))
    attendance_check(employee=rota, at=at(16, 17))
    days = {r.date: snap(r) for r in AttendanceRecord.objects.filter(employee=rota)}
    assert list(days) == [dt.date(2026, 11, 16)], f"records: {days}"
    assert days[dt.date(2026, 11, 16)][:3] == (at(16, 9), at(16, 17), 8 * 3600)


# 4. The today board on a holiday lists the shift's employees as "Off", not "Not yet in".
def test_today_board_on_a_holiday(team) -> None:
    Employee.objects.create(code="A", full_name="Ana", department=team[0])
    admin = User.objects.create_superuser("root", password="x")
    board = today_board(admin, day=dt.date(2026, 11, 11))  # Wednesday, a holiday of her shift
    assert [e.code for e in board.off] == ["A"] and board.not_yet_in == [], (
        f"off={[e.code for e in board.off]} not_yet_in={[e.code for e in board.not_yet_in]}")


# 5. The today board follows a manager's correction: a check-out added by a correction shows "Out".
def test_today_board_after_a_correction(team) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    admin = User.objects.create_superuser("root", password="x")
    record = attendance_check(employee=ana, at=at(12, 9)).record
    attendance_correct(record=record, changed_by=admin, reason="forgot to check out", last_out=at(12, 13))
    board = today_board(admin, day=dt.date(2026, 11, 12))
    assert [r.employee.code for r in board.left] == ["A"], (
        f"inside={[r.employee.code for r in board.inside]} left={[r.employee.code for r in board.left]}")


# 5a. Overtime past midnight on a late shift closes the day it belongs to: the check-out at 00:30
#     counts for the day the shift started (its end + check-out allowance runs past midnight), so
#     the next day still starts with a check-in — in every order the events arrive.
@pytest.mark.parametrize(("start", "end", "allowance"), [(dt.time(14), dt.time(22), 240), (dt.time(9), dt.time(17), 480)])
def test_overtime_past_midnight_counts_for_the_day_the_shift_started(team, settings, start, end, allowance) -> None:
    import itertools

    settings.TIME_ZONE = "Europe/Berlin"
    from zoneinfo import ZoneInfo

    local = ZoneInfo("Europe/Berlin")
    late = Shift.objects.create(name="Late", start=start, end=end, working_days=[0, 1, 2, 3, 4],
                                checkout_after_end_minutes=allowance)
    ola = Employee.objects.create(code="O", full_name="Ola", department=team[0])
    ShiftAssignment.objects.create(shift=late, employee=ola, valid_from=dt.date(2026, 1, 1))
    monday, tuesday = dt.date(2026, 11, 16), dt.date(2026, 11, 17)

    def when(day: dt.date, time: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, time, tzinfo=local)

    times = [when(monday, start), when(tuesday, dt.time(0, 30)), when(tuesday, start), when(tuesday, end)]
    answers = [attendance_check(employee=ola, at=at).kind for at in times]
    assert answers == ["in", "out", "in", "out"]
    expected = {monday: (times[0], times[1]), tuesday: (times[2], times[3])}
    for order in itertools.permutations(times):
        AttendanceEvent.objects.all().delete()
        AttendanceRecord.objects.all().delete()
        for at in order:
            attendance_check(employee=ola, at=at)
        days = {r.date: (r.first_in, r.last_out) for r in AttendanceRecord.objects.filter(employee=ola)}
        assert days == expected, (order, days)
    monday_record = AttendanceRecord.objects.get(employee=ola, date=monday)
    assert monday_record.worked_seconds == int((times[1] - times[0]).total_seconds()) and not monday_record.early_exit


# 5c. The 00:15 close settles a late shift that ended before midnight (a no-show is absent now,
#     not a day later), while a night shift still running is left for the catch-up.
def test_the_close_settles_a_late_shift_at_once_and_leaves_a_running_night_open(team) -> None:
    every_day = [0, 1, 2, 3, 4, 5, 6]
    late = Shift.objects.create(name="Late", start=dt.time(14), end=dt.time(22), working_days=every_day)
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=every_day)
    lena, nick = (Employee.objects.create(code=code, full_name=code, department=team[0]) for code in ("LENA", "NICK"))
    ShiftAssignment.objects.create(shift=late, employee=lena, valid_from=dt.date(2026, 1, 1))
    ShiftAssignment.objects.create(shift=night, employee=nick, valid_from=dt.date(2026, 1, 1))
    with mock.patch("attendance.days.timezone.now", return_value=at(17, 0, 15)):
        attendance_close_day(day=dt.date(2026, 11, 16))
    assert AttendanceRecord.objects.get(employee=lena).status == Status.ABSENT
    assert AttendanceRecord.objects.get(employee=nick).settled_at is None  # still on until 10:00


# 5b. A night worker is "In" on today's board from midnight until they check out (before their
#     shift's cut-off), although their day is yesterday's; after that, tonight's shift is due.
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_today_board_shows_a_night_shift_in_after_midnight(team, settings, zone) -> None:
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = zone
    local = ZoneInfo(zone)
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4])
    nora = Employee.objects.create(code="N", full_name="Nora", department=team[0])
    ShiftAssignment.objects.create(shift=night, employee=nora, valid_from=dt.date(2026, 1, 1))
    admin = User.objects.create_superuser("root", password="x")

    def board(day: int, hour: int, minute: int = 0):
        return today_board(admin, now=dt.datetime(2026, 11, day, hour, minute, tzinfo=local))

    def where(b) -> str:
        lists = {"in": [r.employee_id for r in b.inside], "out": [r.employee_id for r in b.left],
                 "not yet in": [e.pk for e in b.not_yet_in], "off": [e.pk for e in b.off]}
        return next((name for name, ids in lists.items() if nora.pk in ids), "nowhere")

    friday = attendance_check(employee=nora, at=dt.datetime(2026, 11, 13, 22, 0, tzinfo=local)).record
    assert friday.date == dt.date(2026, 11, 13)
    assert where(board(14, 2)) == "in"          # Saturday 02:00: still on Friday's night (Saturday is off)
    assert board(14, 2).day == dt.date(2026, 11, 14)
    assert where(board(14, 11)) == "off"        # past the cut-off (06:00 + 4 h), nobody checked out: off today
    attendance_check(employee=nora, at=dt.datetime(2026, 11, 16, 22, 0, tzinfo=local))   # Monday night
    assert where(board(17, 2)) == "in"          # Tuesday 02:00
    attendance_check(employee=nora, at=dt.datetime(2026, 11, 17, 6, 1, tzinfo=local))    # Monday night's out
    assert where(board(17, 6, 30)) == "not yet in"  # she left; Tuesday's night is due


# 6. A deactivated employee's past, closed attendance stays in the month sheet, the CSV export and
#    the records API for the months they worked.
def test_a_deactivated_employee_stays_in_past_reports(team) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    admin = User.objects.create_superuser("root", password="x")
    attendance_check(employee=ana, at=at(12, 9))
    attendance_check(employee=ana, at=at(12, 17))
    attendance_close_day(day=dt.date(2026, 11, 12))
    before = month_sheet(admin, year=2026, month=11).worked_seconds
    Employee.objects.filter(pk=ana.pk).update(is_active=False)
    after = month_sheet(admin, year=2026, month=11).worked_seconds
    listed = records_for(admin, start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 30)).count()
    assert (before, after, listed) == (8 * 3600, 8 * 3600, 1)


# 7. A deactivated employee's open day is settled by the close (not listed by days_to_close forever).
def test_a_deactivated_employee_s_open_day_is_settled(team) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    attendance_check(employee=ana, at=at(12, 9))
    Employee.objects.filter(pk=ana.pk).update(is_active=False)
    attendance_close_day(day=dt.date(2026, 11, 12))
    record = AttendanceRecord.objects.get(employee=ana)
    assert record.settled_at is not None, (record.status, days_to_close(today=dt.date(2026, 11, 20)))


# 8. The weekly late chart is in calendar order: in January 2027 the 1st-3rd (ISO week 53 of 2026)
#    come first; in December 2025 the 29th-31st (ISO week 1 of 2026) last.
def test_weekly_late_is_in_calendar_order(team) -> None:
    admin = User.objects.create_superuser("root", password="x")
    jan = month_sheet(admin, year=2027, month=1)
    dec = month_sheet(admin, year=2025, month=12)
    assert [w for w, _ in jan.weekly_late][0] == "W53", [w for w, _ in jan.weekly_late]
    assert [w for w, _ in dec.weekly_late][-1] == "W1", [w for w, _ in dec.weekly_late]


# 9. A correction that supplies the missing check-out clears missing_checkout, whether the day was
#    closed before or after it.
@pytest.mark.parametrize("close_first", [False, True])
def test_correction_clears_missing_checkout_whatever_the_order(team, close_first) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    boss = User.objects.create_superuser("root", password="x")
    record = attendance_check(employee=ana, at=at(12, 9)).record
    if close_first:
        attendance_close_day(day=dt.date(2026, 11, 12))
    fixed = attendance_correct(record=AttendanceRecord.objects.get(pk=record.pk), changed_by=boss,
                               reason="left at 17:00", last_out=at(12, 17))
    if not close_first:
        attendance_close_day(day=dt.date(2026, 11, 12))
    fixed.refresh_from_db()
    assert (fixed.status, fixed.worked_seconds, fixed.missing_checkout) == (Status.PRESENT, 8 * 3600, False)


# 9b. Events that arrived after a correction count when the manager saves the review, for every
#     time the manager never typed (a typed time stands): the day ends as if they had come in order.
@pytest.mark.parametrize("typed", ["last_out", "status"])
def test_a_review_save_takes_late_events_for_the_times_nobody_typed(team, typed) -> None:
    boss = User.objects.create_superuser("root", password="x")
    thursday = dt.date(2026, 11, 12)
    fix = {"last_out": {"last_out": at(12, 17)}, "status": {"status": Status.PRESENT}}[typed]

    def day(order: list[dt.datetime]) -> tuple:
        AttendanceCorrection.objects.all().delete()
        AttendanceEvent.objects.all().delete()
        AttendanceRecord.objects.all().delete()
        ana, _ = Employee.objects.get_or_create(code="A", defaults={"full_name": "Ana", "department": team[0]})
        first, rest = order[0], order[1:]
        attendance_check(employee=ana, at=first)
        attendance_close_day(day=thursday)
        record = attendance_correct(record=AttendanceRecord.objects.get(employee=ana, date=thursday), changed_by=boss,
                                    reason="the manager's fix", **fix)
        for late in rest:
            attendance_check(employee=ana, at=late)
        record.refresh_from_db()
        if rest:
            assert record.needs_review
            record = attendance_correct(record=record, changed_by=boss, reason="reviewed")  # the form, fields empty
        record.refresh_from_db()
        return snap(record)

    in_order = [at(12, 9), at(12, 16)]

    def reference() -> tuple:  # both events first, then the same fix
        AttendanceCorrection.objects.all().delete()
        AttendanceEvent.objects.all().delete()
        AttendanceRecord.objects.all().delete()
        ana, _ = Employee.objects.get_or_create(code="A", defaults={"full_name": "Ana", "department": team[0]})
        for event in in_order:
            attendance_check(employee=ana, at=event)
        attendance_close_day(day=thursday)
        record = attendance_correct(record=AttendanceRecord.objects.get(employee=ana, date=thursday), changed_by=boss,
                                    reason="the manager's fix", **fix)
        return snap(record)

    expected = reference()
    assert expected[0] == at(12, 9) and expected[1] == (at(12, 17) if typed == "last_out" else at(12, 16))
    assert day([at(12, 16), at(12, 9)]) == expected
    assert day([at(12, 9), at(12, 16)]) == expected


# 9c. Two events captured at the same instant (a kiosk and a door camera): which one is kept and
#     which is the repeat is the same whatever order they arrive in — the event list too, not only
#     the record.
def test_events_at_the_same_instant_keep_the_same_one_in_every_arrival_order(team) -> None:
    import itertools

    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    events = [(at(12, 9), "kiosk", 0.71), (at(12, 9), "device:Door", 0.80), (at(12, 9), "device:Door", 0.65),
              (at(12, 17), "kiosk", 0.7)]
    seen = set()
    for order in itertools.permutations(events):
        AttendanceEvent.objects.all().delete()
        AttendanceRecord.objects.all().delete()
        for when, source, score in order:
            attendance_check(employee=ana, at=when, source=source, score=score)
        seen.add(tuple(AttendanceEvent.objects.order_by("at", "source", "-score").values_list("source", "score", "kind")))
    assert len(seen) == 1, seen
    (listing,) = seen
    assert [kind for *_, kind in listing].count(AttendanceEvent.Kind.REPEAT) == 2
    assert ("device:Door", 0.80, AttendanceEvent.Kind.CHECK_IN) in listing  # the door's better view is kept


# 10. Half an hour of work on a holiday (or a weekly day off) is never settled as "absent".
@pytest.mark.parametrize("day", [11, 14])  # Wed 11 Nov is a holiday of the shift, Sat 14 Nov a day off
def test_brief_work_on_a_holiday_or_day_off_is_not_an_absence(team, day) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana", department=team[0])
    attendance_check(employee=ana, at=at(day, 10))
    attendance_check(employee=ana, at=at(day, 10, 30))
    attendance_close_day(day=dt.date(2026, 11, day))
    record = AttendanceRecord.objects.get(employee=ana)
    assert record.status != Status.ABSENT, (record.status, record.worked_seconds)


# 11. An employee deleted while their check-in is in flight (recognised, not yet written): the door
#     hears "not recognised" (no IntegrityError at commit, no 500) and nothing is checked in.
@pytest.mark.django_db(transaction=True)
def test_an_employee_deleted_while_their_check_in_is_in_flight_is_not_recognised(settings) -> None:
    from attendance.services import _record, _Seen
    from portal.services import device_create, employee_delete

    settings.TIME_ZONE = "UTC"
    device, _ = device_create(name="Door")
    vic = Employee.objects.create(code="V", full_name="Vic")
    seen = _Seen(None, vic, 0.93, "ok")  # what recognition answered a moment ago
    employee_delete(employee=Employee.objects.get(pk=vic.pk))
    outcome = _record(seen, source="device:Door", device_id=device.pk, log_id=None, captured_at=at(12, 9))
    assert outcome.outcome in ("unknown", "no_face"), outcome


# 3b. The same overlap on a 24-hour shift (08:00-08:00): the next shift's check-in at 08:05 counts
#     for its own day (the windows meet at 08:00).
def test_24h_shift_next_check_in(team) -> None:
    guard = Shift.objects.create(name="24h", start=dt.time(8), end=dt.time(8), working_days=[0, 1, 2, 3, 4, 5, 6])
    gil = Employee.objects.create(code="G", full_name="Gil Guard", department=team[0])
    ShiftAssignment.objects.create(shift=guard, employee=gil, valid_from=dt.date(2026, 1, 1))
    for t in (at(12, 8), at(13, 7, 55), at(13, 8, 5)):
        attendance_check(employee=gil, at=t)
    days = {r.date: (r.first_in, r.last_out) for r in AttendanceRecord.objects.filter(employee=gil)}
    assert days == {dt.date(2026, 11, 12): (at(12, 8), at(13, 7, 55)), dt.date(2026, 11, 13): (at(13, 8, 5), None)}, days


# 3c. The halfway split is in real time, also on a DST night: Berlin's clocks go back at 03:00 on
#     Sun 25 Oct 2026; a 22:00-01:00 shift ends 23:00 UTC, the next 05:00 shift starts 04:00 UTC,
#     so the windows meet at 01:30 UTC (02:30 local, the second time round), not 30 minutes later.
def test_the_overnight_split_is_in_real_time_on_a_dst_night(settings) -> None:
    from attendance.days import attendance_day

    settings.TIME_ZONE = "Europe/Berlin"
    every_day = [0, 1, 2, 3, 4, 5, 6]
    late = Shift.objects.create(name="Late", start=dt.time(22), end=dt.time(1), working_days=every_day,
                                checkout_after_end_minutes=360)
    early = Shift.objects.create(name="Early", start=dt.time(5), end=dt.time(13), working_days=every_day)
    rota = Employee.objects.create(code="R", full_name="Rota")
    ShiftAssignment.objects.create(shift=late, employee=rota, valid_from=dt.date(2026, 10, 1), valid_to=dt.date(2026, 10, 24))
    ShiftAssignment.objects.create(shift=early, employee=rota, valid_from=dt.date(2026, 10, 25))
    before, after = dt.datetime(2026, 10, 25, 1, 15, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, 45, tzinfo=UTC)
    assert attendance_day(employee=rota, at=before) == dt.date(2026, 10, 24)
    assert attendance_day(employee=rota, at=after) == dt.date(2026, 10, 25)
