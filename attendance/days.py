"""Attendance days: which day an event counts for, and each day's record recomputed from its
events in capture order (plus a manager's correction) — whatever order the events arrived in.

The rules (after Frappe HRMS):

- **Shift.** An employee's shift comes from their own assignment, else their department's.
- **Day of an event.** Times are read in the site time zone (``settings.TIME_ZONE``, via
  zoneinfo). An event counts for its local calendar day, except when the previous day's shift
  with its check-out allowance runs past midnight (``overnight_cutoff``): an event before the
  previous day's shift end plus ``Shift.checkout_after_end_minutes`` (default 4 h: before 10:00
  for a 22:00-06:00 shift, before 03:30 for a 16:00-23:30 one) counts for the previous day, the
  day the shift started. When the day's own shift starts inside that window (a rota back to
  days, a 24-hour shift), the two are split halfway between the previous end and the day's start
  (at the start if they overlap). Without a shift, the calendar day.
- **In and out by position.** Every recognition is stored as an event with its capture time,
  source and score. A day's events are sorted by capture time; an event within
  ``ATTENDANCE_REPEAT_WINDOW_SECONDS`` after the previous *kept* event is the same visit and is
  ignored (kind ``repeat``); the kept events alternate in, out, in, out… So a queued event that
  arrives late takes its place in the day and the kinds after it are recomputed.
- **Worked time** is the sum of the in -> out intervals of kept events (computed on aware UTC
  times, so a DST day counts real elapsed time). It is never negative (and the database refuses a
  negative value) and never more than last event - first event. First in = the first kept event;
  last out = the last kept "out".
- **Status**: holiday, absent (worked < absent_below_hours), half day (< half_day_below_hours),
  late (first check-in after start + grace), else present; early exit (last out before the
  shift's end - grace, the end on the next day for an overnight shift) is a flag. Until the
  nightly job settles the day, a day without a last out is "open" (or "late").
- **Late events.** An event captured before an event already stored for its day, or arriving for
  a day already settled, recomputes that day and leaves an audit row (``AttendanceCorrection``
  with ``source`` = the device, the reason and the before/after values).
- **Corrections.** A manager's correction stands: the record keeps the manager's values. An event
  arriving for a corrected day is stored and attached to the day but not applied: the event and
  the record are flagged ``needs_review`` (and audited) until a manager corrects the day again.
  A correction's worked time respects breaks: the manager's first in and last out replace the
  first check-in and the last check-out, and the breaks between them (each out -> next in of the
  day's events, clipped to that window) are subtracted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    ClosedDay,
    Holiday,
    Shift,
    ShiftAssignment,
)
from portal.models import Employee

Status = AttendanceRecord.Status
Kind = AttendanceEvent.Kind
UTC = dt.UTC


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def repeat_window() -> dt.timedelta:
    return dt.timedelta(seconds=settings.ATTENDANCE_REPEAT_WINDOW_SECONDS)


# --- the pure rule ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timeline:
    """A day's events in capture order: the derived kind of each event (by its id), the in -> out
    intervals, and what the record shows."""

    kinds: dict[int, str]
    intervals: list[tuple[dt.datetime, dt.datetime]]  # (in, out) of kept events, UTC
    breaks: list[tuple[dt.datetime, dt.datetime]]  # (out, next in) of kept events, UTC
    first_in: dt.datetime | None
    last_out: dt.datetime | None
    worked_seconds: int
    open: bool  # the last kept event is a check-in
    repeats_of: dict[int, int] = field(default_factory=dict)  # a repeated event's id -> the kept event's id


def derive(events: Sequence[tuple[int, dt.datetime]], *, window: dt.timedelta) -> Timeline:
    """The day of ``events`` (id, aware capture time) by position in capture order (see the module
    docstring). Ties in capture time are broken by id, so the record never depends on arrival order."""
    ordered = sorted(((at.astimezone(UTC), ident) for ident, at in events))
    kept: list[tuple[dt.datetime, int]] = []
    kinds: dict[int, str] = {}
    repeats_of: dict[int, int] = {}
    for at, ident in ordered:
        if kept and at - kept[-1][0] < window:
            kinds[ident] = Kind.REPEAT
            repeats_of[ident] = kept[-1][1]
            continue
        kinds[ident] = Kind.CHECK_IN if len(kept) % 2 == 0 else Kind.CHECK_OUT
        kept.append((at, ident))
    times = [at for at, _ in kept]
    intervals = list(zip(times[0::2], times[1::2]))
    breaks = list(zip(times[1::2], times[2::2]))
    worked = sum((end - start for start, end in intervals), dt.timedelta())
    return Timeline(kinds=kinds, intervals=intervals, breaks=breaks, first_in=times[0] if times else None,
                    last_out=times[len(times) - 1 - (len(times) % 2 == 1)] if len(times) >= 2 else None,
                    worked_seconds=int(worked.total_seconds()), open=len(times) % 2 == 1, repeats_of=repeats_of)


def worked_within(timeline: Timeline, *, first_in: dt.datetime, last_out: dt.datetime) -> int:
    """A correction's worked time: ``last_out - first_in`` less the day's breaks inside that window."""
    start, end = first_in.astimezone(UTC), last_out.astimezone(UTC)
    total = end - start
    for out, back in timeline.breaks:
        overlap = min(back, end) - max(out, start)
        if overlap > dt.timedelta():
            total -= overlap
    return max(0, int(total.total_seconds()))


# --- shifts and days ----------------------------------------------------------------------------

def shift_for(*, employee: Employee, day: dt.date) -> Shift | None:
    """The employee's own assignment valid on ``day``, else their department's."""
    valid = ShiftAssignment.objects.filter(valid_from__lte=day).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
    own = valid.filter(employee=employee).select_related("shift").order_by("-valid_from", "-pk").first()
    if own:
        return own.shift
    if employee.department_id:
        team = (valid.filter(department_id=employee.department_id, employee__isnull=True).select_related("shift")
                .order_by("-valid_from", "-pk").first())
        if team:
            return team.shift
    return None


def is_holiday(*, shift: Shift | None, day: dt.date) -> bool:
    return bool(shift and shift.holiday_list_id and Holiday.objects.filter(holiday_list_id=shift.holiday_list_id, date=day).exists())


def is_working_day(*, shift: Shift | None, day: dt.date) -> bool:
    return shift is not None and day.weekday() in (shift.working_days or []) and not is_holiday(shift=shift, day=day)


def local_at(day: dt.date, time: dt.time) -> dt.datetime:
    """``time`` on ``day`` in the site time zone, as an aware datetime."""
    return dt.datetime.combine(day, time, tzinfo=site_zone())


def shift_bounds(shift: Shift, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """When the shift that starts on ``day`` starts and ends (the next day for an overnight shift)."""
    end_day = day + dt.timedelta(days=1) if shift.overnight else day
    return local_at(day, shift.start), local_at(end_day, shift.end)


def overnight_cutoff(*, employee: Employee, day: dt.date) -> dt.datetime | None:
    """For a shift starting on ``day`` whose end plus its check-out allowance
    (``checkout_after_end_minutes``) runs past midnight — every overnight shift, and a late shift
    whose allowance does: the moment on the next day from which events count for the next day
    (None: no shift, or the shift and its allowance end by midnight). It is the shift's end plus
    the allowance, unless the next day's own shift starts before that (a rota back to days, a
    24-hour shift): then the two windows are split halfway between the end and the next start, or
    at the next start when they overlap."""
    shift = shift_for(employee=employee, day=day)
    return None if shift is None else _cutoff_after(shift, employee=employee, day=day)


def _cutoff_after(shift: Shift, *, employee: Employee, day: dt.date) -> dt.datetime | None:
    """overnight_cutoff for ``employee``'s ``shift`` on ``day``, already read (the next day's shift
    is read only when the allowance passes midnight)."""
    if cutoff_between(shift, day, None) is None:
        return None
    following = day + dt.timedelta(days=1)
    next_shift = shift_for(employee=employee, day=following)
    working = next_shift is not None and is_working_day(shift=next_shift, day=following)
    return cutoff_between(shift, day, next_shift if working else None)


def cutoff_between(shift: Shift, day: dt.date, next_shift: Shift | None) -> dt.datetime | None:
    """overnight_cutoff's rule for ``shift`` starting on ``day`` and ``next_shift``, the next day's
    shift if it works that day (None: it does not, or there is none)."""
    # On UTC instants: the allowance and the halfway point are real time, also on a DST night.
    end = shift_bounds(shift, day)[1].astimezone(UTC)
    cutoff = end + dt.timedelta(minutes=shift.checkout_after_end_minutes)
    following = day + dt.timedelta(days=1)
    if cutoff <= local_at(following, dt.time.min).astimezone(UTC):
        return None
    if next_shift is not None:
        next_start = shift_bounds(next_shift, following)[0].astimezone(UTC)
        if next_start < cutoff:
            cutoff = next_start if next_start <= end else end + (next_start - end) / 2
    return cutoff


@dataclass(frozen=True)
class DayShifts:
    """Everyone's shift on one day, read in two queries: ``shift_for``, ``is_working_day`` and
    ``is_holiday`` for many people at once (the today board)."""

    day: dt.date
    own: dict[int, Shift]
    team: dict[int, Shift]
    holiday_lists: frozenset[int]

    def shift_of(self, employee: Employee) -> Shift | None:
        """``shift_for`` on this day."""
        own = self.own.get(employee.pk)
        return own if own is not None else self.team.get(employee.department_id)

    def is_holiday(self, shift: Shift | None) -> bool:
        """``is_holiday`` on this day."""
        return shift is not None and shift.holiday_list_id in self.holiday_lists

    def is_working(self, shift: Shift | None) -> bool:
        """``is_working_day`` on this day."""
        return shift is not None and self.day.weekday() in (shift.working_days or []) and not self.is_holiday(shift)


def day_shifts(day: dt.date) -> DayShifts:
    """The assignments valid on ``day`` (the latest first, as ``shift_for`` takes them) and the
    holiday lists with a holiday that day."""
    own: dict[int, Shift] = {}
    team: dict[int, Shift] = {}
    valid = ShiftAssignment.objects.filter(valid_from__lte=day).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
    for assignment in valid.select_related("shift").order_by("-valid_from", "-pk"):
        if assignment.employee_id is not None:
            own.setdefault(assignment.employee_id, assignment.shift)
        elif assignment.department_id is not None:
            team.setdefault(assignment.department_id, assignment.shift)
    holiday_lists = frozenset(Holiday.objects.filter(date=day).values_list("holiday_list_id", flat=True))
    return DayShifts(day=day, own=own, team=team, holiday_lists=holiday_lists)


def may_run_past_midnight(shift: Shift) -> bool:
    """Whether ``shift``'s end plus its check-out allowance may reach the next day: overnight_cutoff's
    cheap test, with an hour to spare for a DST night."""
    end = shift.end.hour * 60 + shift.end.minute
    return shift.overnight or end + shift.checkout_after_end_minutes > 23 * 60


def correction_time(record: AttendanceRecord, time: dt.time) -> dt.datetime:
    """A clock time a manager typed for ``record``'s day: when the day's shift runs past midnight
    (``overnight_cutoff``), a time before the shift's start that is before the cut-off on the next
    morning is on the next calendar day (the same rule as for events)."""
    shift = shift_for(employee=record.employee, day=record.date)
    cutoff = None if shift is None else _cutoff_after(shift, employee=record.employee, day=record.date)
    if shift is not None and cutoff is not None and time < shift.start:
        next_morning = local_at(record.date + dt.timedelta(days=1), time)
        if next_morning < cutoff:
            return next_morning
    return local_at(record.date, time)


def attendance_day(*, employee: Employee, at: dt.datetime) -> dt.date:
    """The attendance day an event captured at ``at`` counts for (see the module docstring)."""
    local = at.astimezone(site_zone())
    previous = local.date() - dt.timedelta(days=1)
    cutoff = overnight_cutoff(employee=employee, day=previous)
    if cutoff is not None and at.astimezone(UTC) < cutoff.astimezone(UTC):
        return previous
    return local.date()


# --- writes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    kind: str  # "in" or "out": the event's kind in the recomputed day (for a repeat, the visit's)
    record: AttendanceRecord
    repeated: bool  # the same visit as an earlier event: stored, but it changes nothing
    at: dt.datetime  # for a repeat: the capture time of the visit's kept event
    review: bool = False  # the day was corrected by a manager: stored and flagged, not applied


def _snapshot(record: AttendanceRecord) -> dict[str, object]:
    return {
        "first_in": record.first_in.isoformat() if record.first_in else None,
        "last_out": record.last_out.isoformat() if record.last_out else None,
        "worked_seconds": record.worked_seconds,
        "status": record.status,
    }


def _day_events(record: AttendanceRecord) -> list[AttendanceEvent]:
    return list(AttendanceEvent.objects.filter(employee_id=record.employee_id, day=record.date).order_by("at", "pk"))


def _rederive(record: AttendanceRecord) -> tuple[Timeline, list[AttendanceEvent]]:
    """Recompute the kinds of the day's events from capture order; store the ones that changed."""
    events = _day_events(record)
    # Events captured at the same instant are ranked by what they say (the higher score, then the
    # source), not by arrival: which of them is kept is the same whatever order they came in.
    ranked = sorted(events, key=lambda e: (e.at, -(e.score if e.score is not None else -2.0), e.source, e.pk))
    pk_of = [e.pk for e in ranked]
    by_rank = derive([(rank, e.at) for rank, e in enumerate(ranked)], window=repeat_window())
    timeline = replace(by_rank, kinds={pk_of[rank]: kind for rank, kind in by_rank.kinds.items()},
                       repeats_of={pk_of[rank]: pk_of[kept] for rank, kept in by_rank.repeats_of.items()})
    changed = []
    for event in events:
        if event.kind != timeline.kinds[event.pk]:
            event.kind = timeline.kinds[event.pk]
            changed.append(event)
    if changed:
        AttendanceEvent.objects.bulk_update(changed, ["kind"])
    return timeline, events


def attendance_check(*, employee: Employee, at: dt.datetime | None = None, source: str = "kiosk",
                     score: float | None = None) -> CheckResult:
    """Store a recognition of ``employee`` captured at ``at`` and recompute its day from the day's
    events in capture order. Returns the event's kind in the recomputed day."""
    at = at or timezone.now()
    if timezone.is_naive(at):
        raise ValueError("attendance times must be timezone-aware")
    day = attendance_day(employee=employee, at=at)
    with transaction.atomic():
        record, _ = AttendanceRecord.objects.select_for_update().get_or_create(employee=employee, date=day)
        before = _snapshot(record)
        # A day already closed (for this employee, or for the site: a day off leaves them no record
        # at the close) settles at once, as it would have had the event arrived before the close.
        closing = record.settled_at is not None or (
            ClosedDay.objects.filter(date=day).exists()  # one cheap query first: today is never closed
            and not _still_running(employee=employee, day=day))
        if closing and record.settled_at is None:
            record.settled_at = timezone.now()
        late = closing or AttendanceEvent.objects.filter(employee=employee, day=day, at__gt=at).exists()
        event = AttendanceEvent.objects.create(employee=employee, at=at, day=day, kind=Kind.CHECK_IN, source=source,
                                               score=score, needs_review=record.corrected)
        timeline, events = _rederive(record)
        if record.corrected:
            record.needs_review = True
            record.save(update_fields=["needs_review", "updated_at"])
            AttendanceCorrection.objects.create(
                record=record, source=source[:40], before=before, after=before,
                reason=f"An event captured {_clock(at)} arrived after the correction: attached for review, not applied.")
        else:
            _fill(record, timeline, closing=closing)
            if late and _snapshot(record) != before:
                AttendanceCorrection.objects.create(
                    record=record, source=source[:40], before=before, after=_snapshot(record),
                    reason=f"A late event captured {_clock(at)} arrived {_clock(timezone.now())}: the day was recomputed "
                           "in capture order.")
    kind = timeline.kinds[event.pk]
    if kind == Kind.REPEAT:
        kept = next(e for e in events if e.pk == timeline.repeats_of[event.pk])
        return CheckResult(kind=kept.kind, record=record, repeated=True, at=kept.at, review=record.corrected)
    return CheckResult(kind=kind, record=record, repeated=False, at=at, review=record.corrected)


def _clock(at: dt.datetime) -> str:
    """``at`` in the site's zone and its one format ("1 Dec 2026 09:05:30"), for audit reasons."""
    local = at.astimezone(site_zone())
    return f"{local.day} {local:%b %Y %H:%M:%S}"


def _still_running(*, employee: Employee, day: dt.date) -> bool:
    """``day``'s overnight shift (with its check-out allowance) has not ended yet: too early to
    settle. A late shift that ended before midnight is settled by the 00:15 close; a check-out in
    its allowance after that arrives as a late event and settles the day again."""
    shift = shift_for(employee=employee, day=day)
    if shift is None or not shift.overnight:
        return False
    cutoff = _cutoff_after(shift, employee=employee, day=day)
    return cutoff is not None and timezone.now() < cutoff


def attendance_close_day(*, day: dt.date) -> int:
    """Settle ``day`` for every active employee, and for a deactivated one with a record that day:
    final status, absences, holidays. An overnight shift still running (the 00:15 close of the
    day it started) is left open: the next night's catch-up settles it. Idempotent."""
    settled = 0
    ClosedDay.objects.get_or_create(date=day, defaults={"closed_at": timezone.now()})
    for employee in Employee.objects.filter(Q(is_active=True) | Q(attendance_records__date=day)).distinct():
        with transaction.atomic():
            record = AttendanceRecord.objects.select_for_update().filter(employee=employee, date=day).first()
            if record is None:
                shift = shift_for(employee=employee, day=day)
                if shift is None or (day.weekday() not in (shift.working_days or []) and not is_holiday(shift=shift, day=day)):
                    continue  # no shift, or a weekly day off: nothing to record
                record = AttendanceRecord.objects.create(employee=employee, date=day)
            if record.corrected:
                # A manager's decision stands; the close only says the day is over (as it would
                # have, had the correction come after it).
                record.settled_at = record.settled_at or timezone.now()
                record.missing_checkout = record.first_in is not None and record.last_out is None
                record.save(update_fields=["settled_at", "missing_checkout", "updated_at"])
                continue
            if record.settled_at is None and _still_running(employee=employee, day=day):
                continue  # an unsettled record: days_to_close lists the day again tomorrow
            timeline, _ = _rederive(record)
            record.settled_at = record.settled_at or timezone.now()
            _fill(record, timeline, closing=True)
            settled += 1
    return settled


def _fill(record: AttendanceRecord, timeline: Timeline, *, closing: bool) -> None:
    record.first_in = timeline.first_in
    record.last_out = timeline.last_out
    record.worked_seconds = timeline.worked_seconds
    record.missing_checkout = closing and timeline.open
    _apply_rules(record, closing=closing)
    record.save()


def _apply_rules(record: AttendanceRecord, *, closing: bool) -> None:
    shift = shift_for(employee=record.employee, day=record.date)
    record.late = record.early_exit = False
    if record.first_in is not None and shift is not None and not is_working_day(shift=shift, day=record.date):
        # Work on a holiday or a weekly day off: no shift times to be late or early for, never absent.
        record.status = Status.HOLIDAY if is_holiday(shift=shift, day=record.date) else Status.PRESENT
        if not closing and record.last_out is None:
            record.status = Status.OPEN
        return
    if shift is not None:
        # On UTC instants: a grace is real minutes, also when it crosses a DST change.
        start, end = (bound.astimezone(UTC) for bound in shift_bounds(shift, record.date))
        if record.first_in is not None:
            record.late = record.first_in > start + dt.timedelta(minutes=shift.late_grace_minutes)
        if record.last_out is not None:
            record.early_exit = record.last_out < end - dt.timedelta(minutes=shift.early_exit_grace_minutes)
    hours = record.worked_seconds / 3600
    if record.first_in is None:
        if is_holiday(shift=shift, day=record.date):
            record.status = Status.HOLIDAY
        elif record.status != Status.ON_LEAVE:
            record.status = Status.ABSENT if closing else Status.OPEN
        return
    if not closing and record.last_out is None:
        record.status = Status.LATE if record.late else Status.OPEN
        return
    if shift is not None and hours < shift.absent_below_hours:
        record.status = Status.ABSENT
    elif shift is not None and hours < shift.half_day_below_hours:
        record.status = Status.HALF_DAY
    elif record.late:
        record.status = Status.LATE
    else:
        record.status = Status.PRESENT


CORRECTION_REASON_MAX = 1000


def attendance_correct(*, record: AttendanceRecord, changed_by: AbstractBaseUser, reason: str,
                       first_in: dt.datetime | None = None, last_out: dt.datetime | None = None,
                       status: str | None = None) -> AttendanceRecord:
    """A manager's correction: a reason is required and the before/after values are kept. The
    times the manager typed (now or in an earlier correction) stand; a time never typed is the
    day's events' (so events that were waiting for review count, wherever they fall in the
    day). Worked time is last out - first in less the day's breaks inside that window; the
    events waiting for review are no longer flagged."""
    if not reason or not reason.strip():
        raise ValueError("A correction needs a reason.")
    if len(reason.strip()) > CORRECTION_REASON_MAX:
        raise ValueError(f"A correction's reason is at most {CORRECTION_REASON_MAX} characters.")
    if status is not None and status not in Status.values:
        raise ValueError(f"unknown status {status!r}")
    for value in (first_in, last_out):
        if value is not None and timezone.is_naive(value):
            raise ValueError("attendance times must be timezone-aware")
    with transaction.atomic():
        record = AttendanceRecord.objects.select_for_update().get(pk=record.pk)
        before = _snapshot(record)
        timeline, _ = _rederive(record)
        # A time the manager types now, or typed before, stands; one never typed follows the day's
        # events, those that arrived since the last correction included (as if they came in order).
        if first_in is not None:
            record.first_in, record.first_in_typed = first_in, True
        elif not record.first_in_typed:
            record.first_in = timeline.first_in
        if last_out is not None:
            record.last_out, record.last_out_typed = last_out, True
        elif not record.last_out_typed:
            record.last_out = timeline.last_out
        if record.first_in and record.last_out:
            if record.last_out < record.first_in:
                raise ValueError("The check-out time is before the check-in time.")
            record.worked_seconds = worked_within(timeline, first_in=record.first_in, last_out=record.last_out)
        if status is not None:
            record.status = status
        else:
            _apply_rules(record, closing=True)
        # As the close says for a corrected day (attendance_close_day), whichever comes first.
        closed = record.settled_at is not None or ClosedDay.objects.filter(date=record.date).exists()
        record.missing_checkout = closed and record.first_in is not None and record.last_out is None
        record.corrected = True
        record.needs_review = False
        record.save()
        AttendanceEvent.objects.filter(employee_id=record.employee_id, day=record.date, needs_review=True).update(needs_review=False)
        AttendanceCorrection.objects.create(record=record, changed_by=changed_by, reason=reason.strip(),
                                            before=before, after=_snapshot(record))
    return record
