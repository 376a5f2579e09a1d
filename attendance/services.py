"""Attendance writes: a kiosk or device check-in (recognition, liveness, then the attendance
event), the device's delivery reports, and the monitor history.

The attendance rules themselves — which day an event counts for, in/out by position in capture
order, worked time, overnight shifts, DST, late events, corrections — live in attendance.days and
are exposed here for callers (``attendance_check``, ``attendance_close_day``, ``attendance_correct``,
``shift_for``).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

# The attendance rules (attendance.days), exposed to callers of this module.
from attendance.days import (
    CheckResult,  # noqa: F401
    DayShifts,  # noqa: F401
    attendance_check,  # noqa: F401
    attendance_close_day,  # noqa: F401
    attendance_correct,  # noqa: F401
    attendance_day,  # noqa: F401
    correction_time,  # noqa: F401
    cutoff_between,  # noqa: F401
    day_shifts,  # noqa: F401
    is_holiday,  # noqa: F401
    is_working_day,  # noqa: F401
    may_run_past_midnight,  # noqa: F401
    overnight_cutoff,  # noqa: F401
    shift_for,  # noqa: F401
)
from attendance.events import mirror_deletes_published, recognition_published
from attendance.models import AttendanceEvent, RecognitionLog
from portal.models import Device, Employee
from portal.services import device_seen
from recognition.pipeline.detection import Face


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
    learn: object | None = None  # recognition.learning_harvest.SafeBurst: a safe decision to learn from
    stranger: np.ndarray | None = None  # the views of a burst nobody was recognised in


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
# A kiosk (a manager's session) is timed by the portal's clock: only a device's own capture time counts.
CAPTURED_AT_DEVICES_ONLY = "A capture time is for devices: a kiosk's check-in is timed by the portal's clock."


# What the kiosk says when liveness fails: the next thing to do, not the check's name.
LIVENESS_HINTS = {"no_blink": "Blink once while looking at the camera, then press the button again.",
                  "no_motion": "No movement seen — look at the camera yourself (not a photo) and blink once.",
                  "no_face": "Keep your face in the frame — move closer and look at the camera.",
                  "no_turn": "Please turn your head as asked.",
                  "wrong_way": "Please turn your head the other way."}
UNKNOWN_MESSAGE = "Not recognised — ask your manager to add your photo."
NO_FACE_MESSAGE = "No face seen — move closer and look at the camera."


def _look(frames: list[bytes], fps: float, challenge: str | None = None) -> _Seen:
    """Who is in the burst and are they live (the whole burst at once: REST, a device's check_in
    message). The frames are analysed in capture order, the face tracked from frame to frame; up
    to five views (spread over the burst with open eyes; for a head-turn challenge the most
    frontal ones) are embedded in one batch; each enrolled person's score is their mean over
    those views (see GalleryIndex.decide_burst). attendance.burst holds the rules, shared with
    the streamed path."""
    from attendance.burst import look_at_images
    from recognition.services import check_burst_pixels, decode_frame

    if not frames:
        return _Seen(KioskOutcome("no_face", "No picture arrived from the camera."))
    check_burst_pixels(frames)
    # The JPEG decoder lets go of the GIL: the frames decode side by side, on as many threads as
    # the process's inference (the first bad frame's error is raised, as decoding in order would).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = min(len(frames), 4, settings.ROLLCALL_TORCH_THREADS or cores)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rollcall-decode") as pool:
        images = list(pool.map(decode_frame, frames))
    return look_at_images(images, fps, challenge)


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
        day = "today" if record.date == timezone.localdate() else f"on {record.date.day} {record.date:%b %Y}"
        message = f"Goodbye, {employee.first_name} — checked out {local}, {hours} h {minutes:02d} min {day}"
        outcome = "checked_out"
    if check.review:
        message += " (this day was corrected by a manager, who will review it)"
    return KioskOutcome(outcome, message, employee.pk, employee.full_name, check.at.isoformat(), record.worked_seconds,
                        seen.liveness, seen.similarity)


def kiosk_check_in(*, frames: list[bytes], source: str = "kiosk", fps: float = 12.0, device_id: int | None = None,
                   log_id: int | None = None, captured_at: dt.datetime | None = None,
                   challenge: str | None = None) -> KioskOutcome:
    """A burst of camera frames -> who it is, liveness, then a check-in or check-out, logged for
    the monitor and announced after commit. Nothing is written to attendance unless a known,
    live employee is seen. With ``log_id`` (a device's claimed idempotency key) an attempt that
    was already answered returns that first answer and writes nothing more."""
    return _record(_look(frames, fps, challenge), source=source, device_id=device_id, log_id=log_id,
                   captured_at=captured_at)


def burst_check_in(*, results: list[dict], planned: list[int], fps: float = 12.0, challenge: str | None = None,
                   source: str = "kiosk", device_id: int | None = None, log_id: int | None = None,
                   captured_at: dt.datetime | None = None) -> KioskOutcome:
    """A streamed burst's end (attendance.burst): its frames already analysed (``results``, the
    views in ``planned`` embedded) -> the decision and the same write as ``kiosk_check_in``."""
    from attendance.burst import BurstStream

    seen = BurstStream.from_results(results, fps=fps, challenge=challenge, planned=planned).decide()
    return _record(seen, source=source, device_id=device_id, log_id=log_id, captured_at=captured_at)


def _record(seen: _Seen, *, source: str, device_id: int | None, log_id: int | None,
            captured_at: dt.datetime | None) -> KioskOutcome:
    """What a burst showed -> the log entry, the check-in (a known, live employee only), learning."""
    from recognition.learning_harvest import forget_files, learning_candidate_record, stranger_sample_record

    at = captured_at or timezone.now()
    candidate = None
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
            if seen.employee is not None:
                # Deleted or deactivated while their burst was being looked at: nobody to check in,
                # and a deleted person is named nowhere (the row is locked as employee_delete locks it).
                active = Employee.objects.select_for_update().filter(pk=seen.employee.pk).values_list(
                    "is_active", flat=True).first()
                if active is None and seen.outcome is not None:
                    seen = replace(seen, employee=None)
                elif not active and seen.outcome is None:
                    seen = _Seen(KioskOutcome("unknown", UNKNOWN_MESSAGE), thumbnail=seen.thumbnail)
            outcome = seen.outcome or _checked(seen, at=at, source=source)
            entry.state = RecognitionLog.State.DONE
            entry.outcome, entry.message = outcome.outcome, outcome.message
            entry.employee = seen.employee
            entry.similarity, entry.liveness = outcome.similarity, outcome.liveness or ""
            entry.thumbnail = thumbnail_name or ""
            entry.answer = asdict(outcome)
            entry.save()
            # Learning keeps only accepted check-ins (never repeated, unknown or liveness-failed ones;
            # the nightly job drops those of days a manager corrected), and unknown faces' views as strangers.
            if seen.learn is not None and outcome.outcome in ("checked_in", "checked_out"):
                candidate = learning_candidate_record(employee=seen.employee, burst=seen.learn, at=at, source=source,
                                                      device_id=device_id, log_id=entry.pk)
            elif seen.stranger is not None and outcome.outcome == "unknown":
                stranger_sample_record(vectors=seen.stranger, at=at)
            recognition_published(entry)
    except BaseException:
        if thumbnail_name:
            default_storage.delete(thumbnail_name)
        forget_files(candidate)
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

    def work(**context: object) -> dict[str, object]:
        staged = [stage(frame) for frame in frames]
        return run("attendance.kiosk_check_in", staged_frames=staged, fps=fps, **context)

    return _submit(work, device=device, key=key, captured_at=captured_at, challenge=challenge)


def burst_submit(*, results: list[dict], planned: list[int], fps: float = 12.0, device: Device | None = None,
                 key: str | None = None, captured_at: dt.datetime | None = None,
                 challenge: str | None = None) -> dict[str, object]:
    """``check_in_submit`` for a streamed burst whose frames were analysed as they arrived
    (attendance.burst): the same key claim, capture time and challenge, then the task
    ``attendance.burst_finish`` (the decision and the write)."""
    from recognition.jobs import run

    def work(**context: object) -> dict[str, object]:
        return run("attendance.burst_finish", results=results, planned=planned, fps=fps, **context)

    return _submit(work, device=device, key=key, captured_at=captured_at, challenge=challenge)


def burst_answered(*, device: Device, key: str) -> bool:
    """A device's key already has its stored answer (a streamed replay needs no frame analysed)."""
    return RecognitionLog.objects.filter(device=device, key=key, state=RecognitionLog.State.DONE).exists()


def _submit(work, *, device: Device | None, key: str | None, captured_at: dt.datetime | None,  # noqa: ANN001
            challenge: str | None) -> dict[str, object]:
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
        return work(source=source, device_id=device.pk if device else None, log_id=entry.pk if entry else None,
                    captured_at=at.isoformat(), challenge=direction)
    except BaseException:
        if entry is not None:
            RecognitionLog.objects.filter(pk=entry.pk, state=RecognitionLog.State.PENDING).delete()
            done = RecognitionLog.objects.filter(pk=entry.pk, state=RecognitionLog.State.DONE).first()
            if done is not None:
                return done.answer
        raise


class CaptureTimeError(ValueError):
    """A device's captured_at that can never be accepted: a typed 400 (``code``), so the device
    parks the event in its dead-letter table instead of retrying it."""

    @property
    def code(self) -> str:
        return "captured_at_too_old" if "older" in str(self) else "captured_at_invalid"


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


DEAD_LETTERS_KEPT = 10  # the latest dead letters a device's report keeps for the monitor


def device_heartbeat(*, device: Device, dead_letters: int | None = None,
                     recent: list[dict[str, str]] | None = None) -> Device:
    """A device's heartbeat: it is online; with a report, store how many events sit in its
    dead-letter table (and the latest ones) and show a change on the live monitor."""
    from attendance.events import device_status_published

    device_seen(device=device)
    if dead_letters is None:
        return device
    items = [{"key": str(item.get("key", ""))[:64], "captured_at": str(item.get("captured_at", ""))[:40],
              "reason": str(item.get("reason", ""))[:200]} for item in (recent or [])[:DEAD_LETTERS_KEPT]]
    with transaction.atomic():
        current = Device.objects.select_for_update().get(pk=device.pk)
        changed = (current.dead_letters, current.dead_letters_recent) != (dead_letters, items)
        current.dead_letters, current.dead_letters_recent = dead_letters, items
        current.dead_letters_reported_at = timezone.now()
        current.save(update_fields=["dead_letters", "dead_letters_recent", "dead_letters_reported_at"])
        device.dead_letters, device.dead_letters_recent = dead_letters, items
        device.dead_letters_reported_at = current.dead_letters_reported_at
        if changed:
            device_status_published(device, online=True)
    return device


def recognition_log_purge(*, older_than: dt.datetime) -> int:
    """Delete monitor history (and its face thumbnails) captured before ``older_than``; the
    Firebase mirror (when configured) loses the same events."""
    return recognition_logs_delete(entries=RecognitionLog.objects.filter(at__lt=older_than))


def recognition_logs_delete(*, entries: models.QuerySet[RecognitionLog]) -> int:
    """Delete these monitor history rows (the purge, an admin's delete): their face thumbnails go
    once the transaction commits (attendance.signals) and so do their copies in the Firebase mirror."""
    pks = list(entries.values_list("pk", flat=True))
    deleted: list[int] = []
    with transaction.atomic():
        for start in range(0, len(pks), 500):
            # Each chunk is read whole before its rows go: SQLite refuses a delete while a read of the
            # same table is still open on the connection ("database table is locked").
            for entry in list(RecognitionLog.objects.filter(pk__in=pks[start:start + 500])):
                pk = entry.pk
                entry.delete()  # one by one: the thumbnail goes with its row (attendance.signals)
                deleted.append(pk)
        mirror_deletes_published(deleted)
    return len(deleted)
