"""Celery tasks: thin interfaces over recognition services, returning JSON-able dicts.

Started by name through recognition/jobs.py (on a worker, or called directly in the embedded default).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.contrib.auth import get_user_model

from portal.models import Employee
from recognition import services
from recognition.jobs import error_result, take_staged
from recognition.models import LearningRun, ReembedJob
from recognition.pipeline.errors import PipelineError
from recognition.serializers_out import face_json, recognized_json


@shared_task(name="recognition.face_enroll")
def face_enroll(*, staged: str, employee_id: int, filename: str, source: str, created_by_id: int | None,
                enrolment_code_id: int | None = None, claimed_at: str | None = None) -> dict[str, Any]:
    try:
        data = take_staged(staged)
        employee = Employee.objects.get(pk=employee_id)
        user = get_user_model().objects.filter(pk=created_by_id).first() if created_by_id else None
        claim = (services.EnrolmentClaim(code_id=enrolment_code_id, claimed_at=dt.datetime.fromisoformat(claimed_at))
                 if enrolment_code_id is not None and claimed_at else None)
        face = services.face_enroll(employee=employee, data=data, filename=filename, source=source, created_by=user,
                                    claim=claim)
    except PipelineError as exc:
        return error_result(exc)
    return {"face_id": face.pk}


@shared_task(name="recognition.face_recognize")
def face_recognize(*, staged: str, k: int = 5) -> dict[str, Any]:
    try:
        results = services.face_recognize(data=take_staged(staged), k=k)
    except PipelineError as exc:
        return error_result(exc)
    return {"faces": [recognized_json(r) for r in results]}


@shared_task(name="recognition.face_verify")
def face_verify(*, staged: str, employee_id: int) -> dict[str, Any]:
    try:
        result = services.face_verify(data=take_staged(staged), employee=Employee.objects.get(pk=employee_id))
    except PipelineError as exc:
        return error_result(exc)
    return {"face": face_json(result.face), "score": result.score, "distance": result.distance,
            "same": result.same, "threshold": result.threshold}


@shared_task(name="recognition.face_detect")
def face_detect(*, staged: str) -> dict[str, Any]:
    try:
        faces = services.face_detect(data=take_staged(staged))
    except PipelineError as exc:
        return error_result(exc)
    return {"faces": [face_json(f) for f in faces]}


@shared_task(name="recognition.ping")
def ping() -> dict[str, bool]:
    """A worker's sign of life for /health/ (a real round trip through the broker)."""
    return {"pong": True}


@shared_task(name="recognition.gallery_reembed", soft_time_limit=None, time_limit=None)
def gallery_reembed(*, job_id: int) -> dict[str, Any]:
    job = services.gallery_reembed(job=ReembedJob.objects.get(pk=job_id))
    return {"job_id": job.pk, "done": job.done, "failed": job.failed, "total": job.total}


@shared_task(name="recognition.learning_nightly", soft_time_limit=None, time_limit=None)
def learning_nightly(*, run_id: int | None = None) -> dict[str, Any]:
    """The nightly learning (django-celery-beat's "Nightly learning", or "Run now")."""
    from recognition.learning import learning_nightly as nightly

    # The schedule passes no run: one is claimed, never beside a live one (a "Run now", a slow night).
    run = nightly(run=LearningRun.objects.get(pk=run_id) if run_id is not None else None, trigger="schedule")
    return {"run_id": run.pk, "status": run.status, "decision": run.decision,
            "templates_added": run.templates_added, "templates_removed": run.templates_removed}


@worker_ready.connect
def _reembed_when_the_embedder_changed(**kwargs: Any) -> None:
    """A deployment that changes ROLLCALL_EMBEDDER restarts its workers: the first to start queues
    the re-embedding of stale photos (a no-op when none are stale or a job is already running)."""
    services.gallery_reembed_start()


@shared_task(name="recognition.gallery_map_build", soft_time_limit=None, time_limit=None)
def gallery_map_build(*, employee_ids: list[int], embedder: str, embedder_version: str,
                      threshold: float, model_version: int | None = None) -> dict[str, Any]:
    from recognition.gallery_map import gallery_map_build as build

    data = build(employee_ids=employee_ids, embedder=embedder, embedder_version=embedder_version, threshold=threshold,
                 model_version=model_version)
    return {"points": len(data["points"]), "seconds": data["seconds"]}
