"""Attendance writes: check-in/out from a recognition, closing a day, manager corrections.

Rules (after Frappe HRMS): an employee's shift comes from their own assignment, else their
department's. Recognitions alternate check-in / check-out; one within the repeat window of the
previous event is the same visit and writes nothing. Worked time is the sum of in -> out
intervals. Status: holiday, absent (worked < absent_below_hours), half day (< half_day_below_hours),
late (first check-in after start + grace), else present; early exit is a flag.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from attendance.models import AttendanceCorrection, AttendanceEvent, AttendanceRecord, Holiday, Shift, ShiftAssignment
from portal.models import Employee

Status = AttendanceRecord.Status


def shift_for(*, employee: Employee, day: dt.date) -> Shift | None:
    """The employee's own assignment valid on ``day``, else their department's."""
    valid = ShiftAssignment.objects.filter(valid_from__lte=day).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
    own = valid.filter(employee=employee).select_related("shift").first()
    if own:
        return own.shift
    if employee.department_id:
        team = valid.filter(department_id=employee.department_id, employee__isnull=True).select_related("shift").first()
        if team:
            return team.shift
    return None


def is_holiday(*, shift: Shift | None, day: dt.date) -> bool:
    return bool(shift and shift.holiday_list_id and Holiday.objects.filter(holiday_list_id=shift.holiday_list_id, date=day).exists())


def is_working_day(*, shift: Shift | None, day: dt.date) -> bool:
    return shift is not None and day.weekday() in (shift.working_days or []) and not is_holiday(shift=shift, day=day)


@dataclass(frozen=True)
class CheckResult:
    kind: str  # "in" or "out"
    record: AttendanceRecord
    repeated: bool  # inside the repeat window: nothing was written
    at: dt.datetime


def attendance_check(*, employee: Employee, at: dt.datetime | None = None, source: str = "kiosk",
                     score: float | None = None) -> CheckResult:
    """Record a recognised employee at ``at``: a check-in or a check-out, or nothing if repeated."""
    at = at or timezone.now()
    if timezone.is_naive(at):
        raise ValueError("attendance times must be timezone-aware")
    day = timezone.localtime(at).date()
    window = dt.timedelta(seconds=settings.ATTENDANCE_REPEAT_WINDOW_SECONDS)
    with transaction.atomic():
        record, _ = AttendanceRecord.objects.select_for_update().get_or_create(employee=employee, date=day)
        events = list(AttendanceEvent.objects.filter(employee=employee, at__date=day).order_by("at"))
        last = events[-1] if events else None
        if last is not None and abs(at - last.at) < window:
            return CheckResult(kind=last.kind, record=record, repeated=True, at=last.at)
        kind = AttendanceEvent.Kind.CHECK_OUT if last is not None and last.kind == AttendanceEvent.Kind.CHECK_IN else AttendanceEvent.Kind.CHECK_IN
        AttendanceEvent.objects.create(employee=employee, at=at, kind=kind, source=source, score=score)
        _recompute(record, closing=False)
    return CheckResult(kind=kind, record=record, repeated=False, at=at)


def attendance_close_day(*, day: dt.date) -> int:
    """Settle ``day`` for every active employee: final status, absences, holidays. Idempotent."""
    settled = 0
    for employee in Employee.objects.filter(is_active=True):
        with transaction.atomic():
            record = AttendanceRecord.objects.select_for_update().filter(employee=employee, date=day).first()
            if record is None:
                shift = shift_for(employee=employee, day=day)
                if shift is None or (day.weekday() not in (shift.working_days or []) and not is_holiday(shift=shift, day=day)):
                    continue  # no shift, or a weekly day off: nothing to record
                record = AttendanceRecord.objects.create(employee=employee, date=day)
            if record.corrected:
                continue  # a manager's decision stands
            _recompute(record, closing=True)
            settled += 1
    return settled


def _recompute(record: AttendanceRecord, *, closing: bool) -> None:
    events = list(AttendanceEvent.objects.filter(employee_id=record.employee_id, at__date=record.date).order_by("at"))
    ins = [e.at for e in events if e.kind == AttendanceEvent.Kind.CHECK_IN]
    outs = [e.at for e in events if e.kind == AttendanceEvent.Kind.CHECK_OUT]
    record.first_in = ins[0] if ins else None
    record.last_out = outs[-1] if outs else None
    worked = dt.timedelta()
    for start, end in zip(ins, outs):
        worked += end - start
    record.worked_seconds = int(worked.total_seconds())
    record.missing_checkout = closing and len(ins) > len(outs)
    _apply_rules(record, closing=closing)
    record.save()


def _apply_rules(record: AttendanceRecord, *, closing: bool) -> None:
    shift = shift_for(employee=record.employee, day=record.date)
    record.late = record.early_exit = False
    if shift is not None and record.first_in is not None:
        start = _local(record.date, shift.start) + dt.timedelta(minutes=shift.late_grace_minutes)
        record.late = record.first_in > start
    if shift is not None and record.last_out is not None:
        end = _local(record.date, shift.end) - dt.timedelta(minutes=shift.early_exit_grace_minutes)
        record.early_exit = record.last_out < end
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


def _local(day: dt.date, time: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, time), timezone.get_current_timezone())


def _snapshot(record: AttendanceRecord) -> dict[str, object]:
    return {
        "first_in": record.first_in.isoformat() if record.first_in else None,
        "last_out": record.last_out.isoformat() if record.last_out else None,
        "worked_seconds": record.worked_seconds,
        "status": record.status,
    }


def attendance_correct(*, record: AttendanceRecord, changed_by: AbstractBaseUser, reason: str,
                       first_in: dt.datetime | None = None, last_out: dt.datetime | None = None,
                       status: str | None = None) -> AttendanceRecord:
    """A manager's correction: a reason is required and the before/after values are kept."""
    if not reason or not reason.strip():
        raise ValueError("A correction needs a reason.")
    if status is not None and status not in Status.values:
        raise ValueError(f"unknown status {status!r}")
    with transaction.atomic():
        record = AttendanceRecord.objects.select_for_update().get(pk=record.pk)
        before = _snapshot(record)
        if first_in is not None:
            record.first_in = first_in
        if last_out is not None:
            record.last_out = last_out
        if record.first_in and record.last_out:
            record.worked_seconds = max(0, int((record.last_out - record.first_in).total_seconds()))
        if status is not None:
            record.status = status
        else:
            _apply_rules(record, closing=True)
        record.corrected = True
        record.save()
        AttendanceCorrection.objects.create(record=record, changed_by=changed_by, reason=reason.strip(),
                                            before=before, after=_snapshot(record))
    return record


@dataclass(frozen=True)
class KioskOutcome:
    """What the kiosk shows: outcome is checked_in, checked_out, repeated, unknown,
    liveness_failed or no_face; ``message`` is the sentence for the screen."""

    outcome: str
    message: str
    employee_id: int | None = None
    employee: str | None = None
    at: str | None = None
    worked_seconds: int | None = None
    liveness: str | None = None
    similarity: float | None = None


def kiosk_check_in(*, frames: list[bytes], source: str = "kiosk", fps: float = 12.0) -> KioskOutcome:
    """A burst of camera frames -> who it is (majority over a few frames), liveness, then a
    check-in or check-out. Nothing is written unless a known, live employee is seen."""
    from recognition.engine import get_liveness_checker
    from recognition.services import decode_upload, face_recognize

    if not frames:
        return KioskOutcome("no_face", "No picture arrived from the camera.")
    images = [decode_upload(frame) for frame in frames]
    # Recognise three frames spread over the burst and take the identity they agree on.
    picks = sorted({0, len(frames) // 2, len(frames) - 1})
    votes: dict[int, list[float]] = {}
    seen_face = False
    for index in picks:
        results = face_recognize(image=images[index])
        if not results:
            continue
        seen_face = True
        main = max(results, key=lambda r: r.face.width * r.face.height)
        if main.known and main.best is not None:
            votes.setdefault(main.best.label, []).append(main.best.score)
    if not seen_face:
        return KioskOutcome("no_face", "No face seen — please look at the camera.")
    winner = max(votes.items(), key=lambda item: (len(item[1]), max(item[1])), default=None)
    if winner is None or len(winner[1]) * 2 < len(picks):
        return KioskOutcome("unknown", "Not recognised.")
    employee = Employee.objects.filter(pk=winner[0], is_active=True).first()
    if employee is None:
        return KioskOutcome("unknown", "Not recognised.")
    liveness = "off"
    if settings.ROLLCALL_LIVENESS != "off":
        result = get_liveness_checker().check(images, fps)
        liveness = result.reason
        if not result.live:
            hint = {"no_blink": "Please blink and try again.", "no_motion": "Liveness check failed.",
                    "no_face": "Please keep your face in view."}.get(result.reason, "Liveness check failed.")
            return KioskOutcome("liveness_failed", hint, employee.pk, employee.full_name, liveness=liveness)
    check = attendance_check(employee=employee, source=source, score=max(winner[1]))
    local = timezone.localtime(check.at).strftime("%H:%M")
    record = check.record
    if check.repeated:
        verb = "checked in" if check.kind == AttendanceEvent.Kind.CHECK_IN else "checked out"
        return KioskOutcome("repeated", f"{employee.first_name}, you are already {verb} ({local}).", employee.pk,
                            employee.full_name, check.at.isoformat(), record.worked_seconds, liveness, max(winner[1]))
    if check.kind == AttendanceEvent.Kind.CHECK_IN:
        message = f"Welcome, {employee.first_name} — checked in {local}"
        outcome = "checked_in"
    else:
        hours, minutes = divmod(record.worked_seconds // 60, 60)
        message = f"Goodbye, {employee.first_name} — checked out {local}, {hours} h {minutes:02d} min today"
        outcome = "checked_out"
    return KioskOutcome(outcome, message, employee.pk, employee.full_name, check.at.isoformat(), record.worked_seconds,
                        liveness, max(winner[1]))
