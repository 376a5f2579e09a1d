"""Attendance writes: check-in/out from a recognition, closing a day, manager corrections.

Rules (after Frappe HRMS): an employee's shift comes from their own assignment, else their
department's. Recognitions alternate check-in / check-out; one within the repeat window of the
previous event is the same visit and writes nothing. Worked time is the sum of in -> out
intervals. Status: holiday, absent (worked < absent_below_hours), half day (< half_day_below_hours),
late (first check-in after start + grace), else present; early exit is a flag.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from attendance.events import recognition_published
from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    Holiday,
    RecognitionLog,
    Shift,
    ShiftAssignment,
)
from portal.models import Device, Employee
from portal.services import device_seen
from recognition.pipeline.detection import Face

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


@dataclass(frozen=True)
class _Seen:
    """What a burst showed, before anything is written: either a final ``outcome`` (nobody to
    check in) or a live, recognised ``employee``."""

    outcome: KioskOutcome | None
    employee: Employee | None = None
    similarity: float | None = None
    liveness: str = ""
    thumbnail: bytes | None = None


THUMBNAIL_SIZE = 112


def _thumbnail(image: np.ndarray, face: Face) -> bytes:
    """A small square JPEG of the face (with some margin) for the monitor."""
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1) * 1.3
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    crop = image[top:int(min(image.shape[0], cy + side / 2)), left:int(min(image.shape[1], cx + side / 2))]
    crop = cv2.resize(crop, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


BURST_VIEWS = 5  # frames of a burst that are recognised (spread over it)
BURST_MAX_FRAMES = 48  # frames one check-in may carry (REST and websocket alike)
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_-]{8,64}$"  # a device's key for one captured event


LIVENESS_HINTS = {"no_blink": "Please blink and try again.", "no_motion": "Liveness check failed.",
                  "no_face": "Please keep your face in view.", "no_turn": "Please turn your head as asked.",
                  "wrong_way": "Please turn your head the other way."}


def _main_face(image: np.ndarray, pipeline) -> Face | None:
    faces = pipeline.detector.detect(image)
    return max(faces, key=lambda f: f.width * f.height) if faces else None


def _spread_views(images: list[np.ndarray], pipeline) -> list[tuple[int, Face]]:
    """The main face of up to BURST_VIEWS frames spread evenly over the burst."""
    count = min(BURST_VIEWS, len(images))
    picks = sorted({round(i * (len(images) - 1) / max(1, count - 1)) for i in range(count)})
    return [(index, face) for index in picks if (face := _main_face(images[index], pipeline)) is not None]


def _frontal_views(images: list[np.ndarray], pipeline) -> list[tuple[int, Face]]:
    """For a head-turn burst: the BURST_VIEWS most frontal main faces (turned faces score lower)."""
    from recognition.quality import yaw_ratio

    step = max(1, len(images) // 16)
    found = [(index, face) for index in range(0, len(images), step)
             if (face := _main_face(images[index], pipeline)) is not None]
    frontal = sorted(found, key=lambda item: yaw_ratio(item[1].landmarks))[:BURST_VIEWS]
    return sorted(frontal, key=lambda item: item[0])


def _look(frames: list[bytes], fps: float, challenge: str | None = None) -> _Seen:
    """Who is in the burst and are they live. The main face of up to five frames (spread over the
    burst; for a head-turn challenge, the most frontal ones) is embedded; each enrolled person's
    score is their mean over those views (see GalleryIndex.decide_burst)."""
    from recognition.engine import get_liveness_checker, get_pipeline, match_threshold
    from recognition.selectors import gallery_index
    from recognition.services import decode_upload

    if not frames:
        return _Seen(KioskOutcome("no_face", "No picture arrived from the camera."))
    images = [decode_upload(frame) for frame in frames]
    pipeline = get_pipeline()
    views = _frontal_views(images, pipeline) if challenge else _spread_views(images, pipeline)
    if not views:
        return _Seen(KioskOutcome("no_face", "No face seen — please look at the camera."))
    vectors = pipeline.embedder.embed_pairs([(images[index], face) for index, face in views])  # one batch
    middle, middle_face = views[len(views) // 2]
    thumbnail = _thumbnail(images[middle], middle_face)
    decision = gallery_index().decide_burst(vectors, threshold=match_threshold())
    employee = None
    if decision.known and decision.best is not None and len(vectors) * 2 >= min(BURST_VIEWS, len(images)):
        employee = Employee.objects.filter(pk=decision.best.label, is_active=True).first()
    if employee is None:
        closest = decision.best.score if decision.best is not None else None
        return _Seen(KioskOutcome("unknown", "Not recognised.", similarity=closest), thumbnail=thumbnail)
    similarity = decision.best.score
    liveness = "off"
    if settings.ROLLCALL_LIVENESS != "off":
        checker = get_liveness_checker()
        # A challenge (a screen asked for a head turn) is verified by head pose; without one the
        # burst must show a blink (door units have no screen to ask on).
        result = checker.check_turn(images, challenge) if challenge else checker.check(images, fps)
        liveness = result.reason
        if not result.live:
            hint = LIVENESS_HINTS.get(result.reason, "Liveness check failed.")
            return _Seen(KioskOutcome("liveness_failed", hint, employee.pk, employee.full_name, liveness=liveness,
                                      similarity=similarity), employee, similarity, liveness, thumbnail)
    return _Seen(None, employee, similarity, liveness, thumbnail)


def _checked(seen: _Seen, *, at: dt.datetime, source: str) -> KioskOutcome:
    employee = seen.employee
    check = attendance_check(employee=employee, at=at, source=source, score=seen.similarity)
    local = timezone.localtime(check.at).strftime("%H:%M")
    record = check.record
    if check.repeated:
        verb = "checked in" if check.kind == AttendanceEvent.Kind.CHECK_IN else "checked out"
        return KioskOutcome("repeated", f"{employee.first_name}, you are already {verb} ({local}).", employee.pk,
                            employee.full_name, check.at.isoformat(), record.worked_seconds, seen.liveness, seen.similarity)
    if check.kind == AttendanceEvent.Kind.CHECK_IN:
        message = f"Welcome, {employee.first_name} — checked in {local}"
        outcome = "checked_in"
    else:
        hours, minutes = divmod(record.worked_seconds // 60, 60)
        message = f"Goodbye, {employee.first_name} — checked out {local}, {hours} h {minutes:02d} min today"
        outcome = "checked_out"
    return KioskOutcome(outcome, message, employee.pk, employee.full_name, check.at.isoformat(), record.worked_seconds,
                        seen.liveness, seen.similarity)


def kiosk_check_in(*, frames: list[bytes], source: str = "kiosk", fps: float = 12.0, device_id: int | None = None,
                   log_id: int | None = None, captured_at: dt.datetime | None = None,
                   challenge: str | None = None) -> KioskOutcome:
    """A burst of camera frames -> who it is, liveness, then a check-in or check-out, logged for
    the monitor and announced after commit. Nothing is written to attendance unless a known,
    live employee is seen. With ``log_id`` (a device's claimed idempotency key) an attempt that
    was already answered returns that first answer and writes nothing more."""
    seen = _look(frames, fps, challenge)
    at = captured_at or timezone.now()
    thumbnail_name = None
    if seen.thumbnail is not None:
        thumbnail_name = default_storage.save(f"monitor/{at:%Y/%m}/{uuid.uuid4().hex}.jpg", ContentFile(seen.thumbnail))
    try:
        with transaction.atomic():
            if log_id is not None:
                entry = RecognitionLog.objects.select_for_update().get(pk=log_id)
                if entry.state == RecognitionLog.State.DONE:
                    if thumbnail_name:
                        default_storage.delete(thumbnail_name)
                    return KioskOutcome(**entry.answer)
            else:
                entry = RecognitionLog(at=at, source=source, device_id=device_id)
            outcome = seen.outcome or _checked(seen, at=at, source=source)
            entry.state = RecognitionLog.State.DONE
            entry.outcome, entry.message = outcome.outcome, outcome.message
            entry.employee = seen.employee
            entry.similarity, entry.liveness = outcome.similarity, outcome.liveness or ""
            entry.thumbnail = thumbnail_name or ""
            entry.answer = asdict(outcome)
            entry.save()
            recognition_published(entry)
    except BaseException:
        if thumbnail_name:
            default_storage.delete(thumbnail_name)
        raise
    return outcome


def check_in_submit(*, frames: list[bytes], fps: float = 12.0, device: Device | None = None, key: str | None = None,
                    captured_at: dt.datetime | None = None, challenge: str | None = None) -> dict[str, object]:
    """The web side of a check-in (kiosk page, device REST or websocket): claim the device's
    idempotency key, stage the frames, run the check-in through the dispatch seam and wait for
    its answer.

    A key that was already answered returns the stored answer; a key another request is still
    processing waits for that answer. The caller is told what was committed: when the work
    fails, a check-in that was stored anyway (a worker that finished after we stopped waiting)
    is answered with its stored answer; otherwise the claim is released, so the device's retry
    is processed normally.
    """
    from recognition.jobs import run, stage
    from recognition.services import liveness_challenge_redeem

    at = _capture_time(captured_at)
    direction = None
    if challenge and settings.ROLLCALL_LIVENESS == "challenge":
        direction = liveness_challenge_redeem(challenge)
    source = f"device:{device.name}"[:40] if device is not None else "kiosk"
    if device is not None:
        device_seen(device=device)
    entry = None
    if key is not None:
        if device is None:
            raise ValueError("idempotency keys belong to devices")
        entry, answer = _claim(device=device, key=key, at=at, source=source)
        if answer is not None:
            return answer
    try:
        staged = [stage(frame) for frame in frames]
        return run("attendance.kiosk_check_in", staged_frames=staged, source=source, fps=fps,
                   device_id=device.pk if device else None, log_id=entry.pk if entry else None,
                   captured_at=at.isoformat(), challenge=direction)
    except BaseException:
        if entry is not None:
            RecognitionLog.objects.filter(pk=entry.pk, state=RecognitionLog.State.PENDING).delete()
            done = RecognitionLog.objects.filter(pk=entry.pk, state=RecognitionLog.State.DONE).first()
            if done is not None:
                return done.answer
        raise


class CaptureTimeError(ValueError):
    pass


def _capture_time(captured_at: dt.datetime | None) -> dt.datetime:
    now = timezone.now()
    if captured_at is None:
        return now
    if timezone.is_naive(captured_at):
        raise CaptureTimeError("captured_at needs a time zone (ISO 8601 with an offset or Z).")
    if captured_at > now:
        return now  # a device clock running ahead never puts a check-in in the future
    if (now - captured_at).total_seconds() > settings.ROLLCALL_DEVICE_MAX_DELAY_SECONDS:
        raise CaptureTimeError("captured_at is older than a device may deliver a queued check-in.")
    return captured_at


def _claim(*, device: Device, key: str, at: dt.datetime, source: str) -> tuple[RecognitionLog, dict | None]:
    """Own ``key`` for this device, or get the answer it already has."""
    deadline = time.monotonic() + settings.ROLLCALL_TASK_WAIT_SECONDS
    stale_after = dt.timedelta(seconds=settings.ROLLCALL_TASK_WAIT_SECONDS + 30)
    while True:
        entry, created = RecognitionLog.objects.get_or_create(device=device, key=key, defaults={"at": at, "source": source})
        if created:
            return entry, None
        if entry.state == RecognitionLog.State.DONE:
            return entry, entry.answer
        # Another request holds the key. One whose process died long ago is taken over.
        if timezone.now() - entry.received_at > stale_after and RecognitionLog.objects.filter(
                pk=entry.pk, state=RecognitionLog.State.PENDING, received_at=entry.received_at).update(received_at=timezone.now()):
            return entry, None
        if time.monotonic() > deadline:
            from recognition.jobs import RecognitionUnavailable

            raise RecognitionUnavailable("This check-in is still being processed; try again shortly.")
        time.sleep(0.2)


def recognition_log_purge(*, older_than: dt.datetime) -> int:
    """Delete monitor history (and its face thumbnails) captured before ``older_than``."""
    count = 0
    for entry in RecognitionLog.objects.filter(at__lt=older_than).iterator():
        entry.delete()
        count += 1
    return count
