"""Celery tasks of the attendance app (thin: each calls one service)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from attendance.services import recognition_log_purge


@shared_task(name="attendance.close_yesterday")
def close_yesterday() -> dict[str, object]:
    """Nightly (django-celery-beat, or the portal's in-process scheduler in the embedded default):
    settle yesterday's records, marking absences and holidays (and any earlier day a night the
    portal was off left open, see attendance.services_close); purge old monitor history; remove
    staged uploads a crash left behind; fail and resume re-embedding jobs whose worker died."""
    from attendance.services_close import attendance_close_overdue
    from recognition.jobs import staged_uploads_purge
    from recognition.services import reembed_jobs_resume

    day = timezone.localdate() - dt.timedelta(days=1)
    keep = dt.timedelta(days=settings.ROLLCALL_MONITOR_KEEP_DAYS)
    purged = recognition_log_purge(older_than=timezone.now() - keep)
    staged = staged_uploads_purge(older_than=timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_STAGING_MAX_AGE_SECONDS))
    closed = attendance_close_overdue(today=day + dt.timedelta(days=1))
    return {"day": day.isoformat(), "settled": closed[day.isoformat()], "days_closed": closed, "monitor_purged": purged,
            "staged_purged": staged, "jobs_resumed": reembed_jobs_resume()}


@shared_task(name="attendance.kiosk_check_in")
def kiosk_check_in(*, staged_frames: list[str], source: str = "kiosk", fps: float = 12.0, device_id: int | None = None,
                   log_id: int | None = None, captured_at: str | None = None,
                   challenge: str | None = None) -> dict[str, object]:
    """Recognition, liveness and the check-in run here, on a worker."""
    from dataclasses import asdict

    from attendance.services import kiosk_check_in as check_in
    from recognition.jobs import error_result, take_staged
    from recognition.pipeline.errors import PipelineError

    try:
        frames = [take_staged(name) for name in staged_frames]
        at = dt.datetime.fromisoformat(captured_at) if captured_at else None
        return asdict(check_in(frames=frames, source=source, fps=fps, device_id=device_id, log_id=log_id, captured_at=at,
                              challenge=challenge))
    except PipelineError as exc:
        return error_result(exc)


@shared_task(name="attendance.burst_frame")
def burst_frame(*, staged: str, index: int, hint: list[float] | None = None, embed: bool = False) -> dict[str, object]:
    """One frame of a streamed burst, analysed as it arrives (attendance.burst.analyse_frame)."""
    from attendance.burst import analyse_frame
    from recognition.jobs import error_result, take_staged
    from recognition.pipeline.errors import PipelineError

    try:
        return analyse_frame(take_staged(staged), index=index, hint=hint, embed=embed)
    except PipelineError as exc:
        return error_result(exc)


@shared_task(name="attendance.burst_finish")
def burst_finish(*, results: list[dict], planned: list[int], fps: float = 12.0, source: str = "kiosk",
                 device_id: int | None = None, log_id: int | None = None, captured_at: str | None = None,
                 challenge: str | None = None) -> dict[str, object]:
    """A streamed burst's decision and check-in, from its frames' results."""
    from dataclasses import asdict

    from attendance.services import burst_check_in
    from recognition.jobs import error_result
    from recognition.pipeline.errors import PipelineError

    try:
        at = dt.datetime.fromisoformat(captured_at) if captured_at else None
        return asdict(burst_check_in(results=results, planned=planned, fps=fps, challenge=challenge, source=source,
                                     device_id=device_id, log_id=log_id, captured_at=at))
    except PipelineError as exc:
        return error_result(exc)


@shared_task(bind=True, name="attendance.firebase_mirror", ignore_result=True, autoretry_for=(Exception,),
             retry_backoff=True, retry_backoff_max=300, retry_jitter=True, max_retries=settings.ROLLCALL_FIREBASE_RETRIES,
             soft_time_limit=settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS * 3,
             time_limit=settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS * 3 + 10)
def firebase_mirror(self, *, upsert: dict[str, object] | None = None,
                    delete: list[int] | None = None) -> dict[str, object]:
    """Mirror one monitor event to Firebase and/or remove events from it (attendance.firebase).
    On a worker a failure is retried with backoff and the task gives up after max_retries; in
    the embedded default (called directly) the work goes to the mirror's background thread so
    the check-in that sent it never waits for Firebase."""
    from attendance.firebase import mirror_in_background, mirror_write

    if self.request.called_directly:
        mirror_in_background(upsert=upsert, delete=delete)
        return {"queued": True}
    return mirror_write(upsert=upsert, delete=delete)
