"""Attendance from capture order, whatever the arrival order: property-based tests (hypothesis) of
the rule and of the stored day, the issue's door example, overnight shifts, DST, late events that
change a settled day (audited), corrections that stand (later events flagged for review) and a
correction's worked time with breaks."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from attendance.days import derive, worked_within
from attendance.models import AttendanceCorrection, AttendanceEvent, AttendanceRecord, Shift, ShiftAssignment
from attendance.services import (
    _checked,
    _Seen,
    attendance_check,
    attendance_close_day,
    attendance_correct,
    correction_time,
)
from portal.models import Department, Employee

UTC = dt.UTC
WINDOW = dt.timedelta(seconds=120)
DAY = dt.datetime(2026, 11, 12, tzinfo=UTC)  # a Thursday
Status = AttendanceRecord.Status

# Capture times on one day, to the second (collisions and repeats within the window included).
day_times = st.lists(st.integers(min_value=6 * 3600, max_value=22 * 3600).map(lambda s: DAY + dt.timedelta(seconds=s)),
                     min_size=0, max_size=12)


def _record_of(timeline) -> tuple:
    return timeline.first_in, timeline.last_out, timeline.worked_seconds, timeline.open


# --- the pure rule ------------------------------------------------------------------------------

@given(times=day_times, data=st.data(), window_s=st.integers(min_value=0, max_value=900))
def test_every_arrival_order_gives_the_same_day(times: list[dt.datetime], data: st.DataObject, window_s: int) -> None:
    window = dt.timedelta(seconds=window_s)
    arrived = data.draw(st.permutations(list(enumerate(times))))
    # Ids follow the arrival order (as database ids would), so ties are broken differently too.
    reference = derive([(i, at) for i, at in enumerate(times)], window=window)
    shuffled = derive([(new_id, at) for new_id, (_, at) in enumerate(arrived)], window=window)
    assert _record_of(shuffled) == _record_of(reference)


@given(times=day_times, window_s=st.integers(min_value=0, max_value=900))
def test_worked_time_lies_between_zero_and_last_minus_first(times: list[dt.datetime], window_s: int) -> None:
    timeline = derive(list(enumerate(times)), window=dt.timedelta(seconds=window_s))
    span = (max(times) - min(times)).total_seconds() if times else 0
    assert 0 <= timeline.worked_seconds <= span
    kept = [timeline.kinds[i] for i, _ in sorted(enumerate(times), key=lambda p: (p[1], p[0]))
            if timeline.kinds[i] != "repeat"]
    assert kept == ["in", "out"] * (len(kept) // 2) + ["in"] * (len(kept) % 2), "kept events alternate in, out"
    assert all(a <= b for a, b in timeline.intervals)
    if timeline.first_in is not None and timeline.last_out is not None:
        assert timeline.first_in <= timeline.last_out
        # A correction inside the same window never counts more than the window, nor less than zero.
        corrected = worked_within(timeline, first_in=timeline.first_in, last_out=timeline.last_out)
        assert 0 <= corrected <= (timeline.last_out - timeline.first_in).total_seconds()


def test_events_within_the_window_of_the_previous_kept_event_are_the_same_visit() -> None:
    at = [DAY + dt.timedelta(hours=9), DAY + dt.timedelta(hours=9, seconds=90), DAY + dt.timedelta(hours=9, seconds=150),
          DAY + dt.timedelta(hours=17)]
    timeline = derive(list(enumerate(at)), window=WINDOW)
    # 09:01:30 repeats 09:00; 09:02:30 is 150 s after the kept 09:00, so it is a new (out) event.
    assert [timeline.kinds[i] for i in range(4)] == ["in", "repeat", "out", "in"]
    assert timeline.repeats_of == {1: 0} and timeline.open and timeline.worked_seconds == 150


# --- the stored day -----------------------------------------------------------------------------

@pytest.fixture()
def team(settings) -> Department:
    settings.TIME_ZONE = "UTC"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 120
    team = Department.objects.create(name="Sales")
    shift = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4])
    ShiftAssignment.objects.create(shift=shift, department=team, valid_from=dt.date(2026, 1, 1))
    return team


@pytest.fixture()
def ana(team: Department) -> Employee:
    return Employee.objects.create(code="A", full_name="Ana Example", department=team)


def hm(hour: int, minute: int = 0, day: dt.datetime = DAY) -> dt.datetime:
    return day + dt.timedelta(hours=hour, minutes=minute)


def _stored(employee: Employee, day: dt.date) -> tuple:
    record = AttendanceRecord.objects.get(employee=employee, date=day)
    return record.first_in, record.last_out, record.worked_seconds, record.status, record.late, record.early_exit


@pytest.mark.django_db
@hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations([hm(8, 55), hm(8, 56), hm(12), hm(12, 1), hm(13), hm(17, 5)]))
def test_every_permutation_of_a_days_events_gives_the_same_record(ana: Employee, order: list[dt.datetime]) -> None:
    AttendanceEvent.objects.all().delete()
    AttendanceRecord.objects.all().delete()
    for at in order:
        attendance_check(employee=ana, at=at)
    assert _stored(ana, DAY.date()) == (hm(8, 55), hm(17, 5), int((hm(17, 5) - hm(13) + hm(12) - hm(8, 55)).total_seconds()),
                                        Status.PRESENT, False, False)
    kinds = list(AttendanceEvent.objects.filter(employee=ana).order_by("at").values_list("kind", flat=True))
    assert kinds == ["in", "repeat", "out", "repeat", "in", "out"]


@pytest.mark.django_db
def test_the_issues_door_day_arriving_out_of_order(ana: Employee) -> None:
    """Captured 09:00, 12:00, 13:00, 17:00; arriving 17:00, 09:00, 13:00, 12:00: each is accepted
    with its kind in the day recomputed so far, and the day ends in 09:00, out 17:00, 7 h."""
    answers = []
    for at in (hm(17), hm(9), hm(13), hm(12)):
        outcome = _checked(_Seen(None, ana, 0.93, "ok"), at=at, source="device:Front door")
        answers.append((outcome.outcome, outcome.at))
    assert answers == [("checked_in", hm(17).isoformat()), ("checked_in", hm(9).isoformat()),
                       ("checked_out", hm(13).isoformat()), ("checked_out", hm(12).isoformat())]
    record = AttendanceRecord.objects.get(employee=ana)
    assert (record.first_in, record.last_out, record.worked_seconds) == (hm(9), hm(17), 7 * 3600)
    assert list(AttendanceEvent.objects.order_by("at").values_list("kind", flat=True)) == ["in", "out", "in", "out"]
    # 09:00 and 12:00 arrived after later events of the day: each recomputation is audited.
    audits = list(AttendanceCorrection.objects.filter(record=record).order_by("pk"))
    assert [a.source for a in audits] == ["device:Front door"] * 3 and all(a.changed_by is None for a in audits)
    assert audits[-1].after["worked_seconds"] == 7 * 3600 and "late event captured 12 Nov 2026 12:00:00" in audits[-1].reason


@pytest.mark.django_db
def test_worked_seconds_can_never_be_stored_negative(ana: Employee) -> None:
    record = attendance_check(employee=ana, at=hm(9)).record
    with pytest.raises(IntegrityError), transaction.atomic():
        AttendanceRecord.objects.filter(pk=record.pk).update(worked_seconds=-3600)


@pytest.mark.django_db
def test_a_late_event_reopens_a_settled_day_with_an_audit_row(ana: Employee) -> None:
    attendance_check(employee=ana, at=hm(9))
    attendance_close_day(day=DAY.date())
    record = AttendanceRecord.objects.get(employee=ana)
    assert record.missing_checkout and record.status == Status.ABSENT and record.settled_at is not None
    result = attendance_check(employee=ana, at=hm(17), source="device:Back door")  # queued on a door all night
    assert result.kind == "out" and not result.repeated
    record.refresh_from_db()
    assert not record.missing_checkout and record.status == Status.PRESENT and record.worked_seconds == 8 * 3600
    audit = AttendanceCorrection.objects.get(record=record)
    assert audit.source == "device:Back door" and audit.before["status"] == Status.ABSENT
    assert audit.after["status"] == Status.PRESENT and audit.changed_by is None


@pytest.mark.django_db
def test_a_corrected_day_keeps_the_managers_values_and_flags_later_events(ana: Employee) -> None:
    boss = User.objects.create_user("boss")
    record = attendance_check(employee=ana, at=hm(9)).record
    attendance_close_day(day=DAY.date())
    fixed = attendance_correct(record=record, changed_by=boss, reason="Left at 17:00 (badge log)", last_out=hm(17))
    assert (fixed.worked_seconds, fixed.status, fixed.corrected) == (8 * 3600, Status.PRESENT, True)

    late = attendance_check(employee=ana, at=hm(15), source="device:Front door")  # a door's queued event
    assert late.kind == "out" and late.review
    outcome = _checked(_Seen(None, ana, 0.9, "ok"), at=hm(16), source="kiosk")
    assert outcome.outcome == "checked_in" and "review" in outcome.message
    fixed.refresh_from_db()
    assert (fixed.first_in, fixed.last_out, fixed.worked_seconds, fixed.status) == (hm(9), hm(17), 8 * 3600, Status.PRESENT)
    assert fixed.needs_review
    assert list(AttendanceEvent.objects.filter(needs_review=True).order_by("at").values_list("at", flat=True)) == [hm(15), hm(16)]
    assert AttendanceCorrection.objects.filter(record=fixed, changed_by=None).count() == 2
    attendance_close_day(day=DAY.date())  # the nightly job leaves it alone
    fixed.refresh_from_db()
    assert fixed.worked_seconds == 8 * 3600 and fixed.needs_review

    # The manager reviews: the day's events are now 09:00 in, 15:00 out, 16:00 in; the break counts.
    reviewed = attendance_correct(record=fixed, changed_by=boss, reason="Reviewed the door's late events")
    assert reviewed.worked_seconds == 7 * 3600 and not reviewed.needs_review
    assert not AttendanceEvent.objects.filter(needs_review=True).exists()


@pytest.mark.django_db
def test_a_corrections_worked_time_respects_breaks(ana: Employee) -> None:
    boss = User.objects.create_user("boss")
    for at in (hm(9), hm(12), hm(13), hm(16)):
        record = attendance_check(employee=ana, at=at).record
    assert record.worked_seconds == 6 * 3600
    fixed = attendance_correct(record=record, changed_by=boss, reason="Stayed until 18:00", last_out=hm(18))
    assert fixed.worked_seconds == 8 * 3600  # 09:00-18:00 less the 12:00-13:00 break
    fixed = attendance_correct(record=fixed, changed_by=boss, reason="Came at 12:30", first_in=hm(12, 30))
    assert fixed.worked_seconds == 5 * 3600  # 12:30-18:00 (5.5 h) less the break's last 30 min (12:30-13:00)
    with pytest.raises(ValueError, match="before"):
        attendance_correct(record=fixed, changed_by=boss, reason="typo", last_out=hm(8))


@pytest.mark.django_db
def test_an_overnight_shift_is_one_day(team: Department) -> None:
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4])
    olga = Employee.objects.create(code="O", full_name="Olga Night", department=team)
    ShiftAssignment.objects.create(shift=night, employee=olga, valid_from=dt.date(2026, 1, 1))
    # Thursday 21:55 in, Friday 02:00 out for a break, 02:30 back, 06:10 out; then Friday night 22:00 in.
    friday = DAY + dt.timedelta(days=1)
    for at in (hm(6, 10, friday), hm(21, 55), hm(2, 30, friday), hm(2, 0, friday), hm(22, 0, friday)):
        attendance_check(employee=olga, at=at)
    thursday = AttendanceRecord.objects.get(employee=olga, date=DAY.date())
    assert (thursday.first_in, thursday.last_out) == (hm(21, 55), hm(6, 10, friday))
    assert thursday.worked_seconds == int((dt.timedelta(hours=8, minutes=15) - dt.timedelta(minutes=30)).total_seconds())
    assert not thursday.late and not thursday.early_exit
    assert AttendanceRecord.objects.get(employee=olga, date=friday.date()).first_in == hm(22, 0, friday)
    attendance_close_day(day=DAY.date())
    thursday.refresh_from_db()
    assert thursday.status == Status.PRESENT and not thursday.missing_checkout
    # A manager typing clock times for the night: 06:30 is the next morning, 21:50 the evening.
    assert correction_time(thursday, dt.time(6, 30)) == hm(6, 30, friday)
    assert correction_time(thursday, dt.time(21, 50)) == hm(21, 50)
    fixed = attendance_correct(record=thursday, changed_by=User.objects.create_user("boss"), reason="Left at 06:30",
                               last_out=correction_time(thursday, dt.time(6, 30)))
    assert fixed.worked_seconds == int((dt.timedelta(hours=8, minutes=35) - dt.timedelta(minutes=30)).total_seconds())


@pytest.mark.django_db
@pytest.mark.parametrize(("night", "hours"), [(dt.date(2026, 3, 28), 7), (dt.date(2026, 10, 24), 9)])
def test_a_night_across_a_dst_change_counts_real_time(team: Department, settings, night: dt.date, hours: int) -> None:
    """Berlin: clocks go forward on 29 March 2026 (a 22:00-06:00 night is 7 h) and back on
    25 October 2026 (9 h). Events arrive as UTC instants, as devices send them."""
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    shift = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4, 5, 6])
    nina = Employee.objects.create(code="N", full_name="Nina Night", department=team)
    ShiftAssignment.objects.create(shift=shift, employee=nina, valid_from=dt.date(2026, 1, 1))
    start = dt.datetime.combine(night, dt.time(22), tzinfo=berlin).astimezone(UTC)
    end = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(6), tzinfo=berlin).astimezone(UTC)
    for at in (end, start):
        attendance_check(employee=nina, at=at)
    record = AttendanceRecord.objects.get(employee=nina)
    assert record.date == night and record.worked_seconds == hours * 3600
    assert not record.late and not record.early_exit


@pytest.mark.django_db
@pytest.mark.parametrize(("night", "end", "out", "early"), [
    # New York springs forward at 02:00 on Sun 8 Mar 2026: the 19:00-03:00 shift ends at 03:00 EDT,
    # and leaving then is on time (the end minus 15 min grace is 01:45 EST in real time, not 02:45).
    (dt.date(2026, 3, 7), dt.time(3), dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC), False),
    # Berlin falls back at 03:00 on Sun 25 Oct 2026: the shift ends 03:05 CET (02:05 UTC); leaving
    # at the second 02:30 (CET, 01:30 UTC) is 35 real minutes early, not 35 wall-clock minutes late.
    (dt.date(2026, 10, 24), dt.time(3, 5), dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC), True),
])
def test_a_grace_across_a_dst_change_is_real_minutes(team: Department, settings, night, end, out, early) -> None:
    from zoneinfo import ZoneInfo

    zone = "America/New_York" if night.month == 3 else "Europe/Berlin"
    settings.TIME_ZONE = zone
    local = ZoneInfo(zone)
    shift = Shift.objects.create(name="Late", start=dt.time(19) if night.month == 3 else dt.time(20), end=end,
                                 working_days=[0, 1, 2, 3, 4, 5, 6], early_exit_grace_minutes=15, late_grace_minutes=5)
    nina = Employee.objects.create(code="N", full_name="Nina Night", department=team)
    ShiftAssignment.objects.create(shift=shift, employee=nina, valid_from=dt.date(2026, 1, 1))
    attendance_check(employee=nina, at=dt.datetime.combine(night, shift.start, tzinfo=local).astimezone(UTC))
    attendance_check(employee=nina, at=out)
    record = AttendanceRecord.objects.get(employee=nina)
    assert record.date == night and record.last_out is not None
    assert record.early_exit is early and not record.late


@pytest.mark.django_db
def test_the_day_is_the_site_time_zones(team: Department, settings) -> None:
    settings.TIME_ZONE = "America/Los_Angeles"
    ana = Employee.objects.create(code="LA", full_name="Ana LA", department=team)
    # 2026-11-13 06:30 UTC is still the 12th in Los Angeles (22:30).
    attendance_check(employee=ana, at=dt.datetime(2026, 11, 13, 6, 30, tzinfo=UTC))
    assert AttendanceRecord.objects.get(employee=ana).date == dt.date(2026, 11, 12)


def test_permutations_of_the_issue_example_in_the_pure_rule() -> None:
    times = [hm(9), hm(12), hm(13), hm(17)]
    for order in itertools.permutations(range(4)):
        timeline = derive([(rank, times[i]) for rank, i in enumerate(order)], window=WINDOW)
        assert _record_of(timeline) == (hm(9), hm(17), 7 * 3600, False)
