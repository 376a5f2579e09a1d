"""Running recognition work on Celery workers and waiting for the answer.

Uploads are staged in the shared media storage (not in broker messages), a task is sent, and the
web process waits for its result. In the embedded mode the task runs in-process; with a broker it
runs on a worker. A dead broker or a worker that does not answer in time gives a clear
``recognition_unavailable`` error, and a task that starts after its caller gave up finds its
staged file gone and does nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Task
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from recognition.pipeline.errors import ImageTooLargeError, PipelineError

STAGING = "staging"


class RecognitionUnavailable(PipelineError):
    code = "recognition_unavailable"


class TaskRejected(PipelineError):
    """A task's typed error, carried back from the worker with its code."""


def check_upload_size(size: int) -> None:
    """Refuse a file over ROLLCALL_UPLOAD_MAX_BYTES (the one place this limit is enforced)."""
    limit = settings.ROLLCALL_UPLOAD_MAX_BYTES
    if size > limit:
        raise ImageTooLargeError(f"The file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")


def stage(data: bytes) -> str:
    """Keep uploaded bytes where every worker can read them; returns the staged name."""
    check_upload_size(len(data))
    return default_storage.save(f"{STAGING}/{uuid.uuid4().hex}.bin", ContentFile(data))


def take_staged(name: str) -> bytes:
    """Read and remove a staged upload (raises RecognitionUnavailable when it is gone)."""
    if not name.startswith(f"{STAGING}/") or ".." in name:
        raise ValueError(f"not a staged upload: {name!r}")
    try:
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise RecognitionUnavailable("The upload expired before a worker took it; please try again.") from None
    default_storage.delete(name)
    return data


def error_result(exc: PipelineError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "detail": exc.detail}}


def _is_connection_error(exc: BaseException) -> bool:
    # Celery's Redis result consumer reports a lost connection as a RuntimeError after its retries.
    return isinstance(exc, (OperationalError, RedisError, ConnectionError)) or (
        isinstance(exc, RuntimeError) and "reconnect" in str(exc)
    )


def run(task: Task, *, staged: str | None = None, staged_frames: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Send ``task`` and wait for its dict result; typed errors come back as exceptions.

    ``staged`` / ``staged_frames`` name uploads from ``stage``: they reach the task as keyword
    arguments and are removed here when the task cannot run.
    """
    if staged is not None:
        kwargs["staged"] = staged
    if staged_frames is not None:
        kwargs["staged_frames"] = staged_frames
    staged_names = ([staged] if staged else []) + (staged_frames or [])
    try:
        result = task.apply_async(kwargs=kwargs)
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        _discard(staged_names)
        raise RecognitionUnavailable("The recognition service is unreachable (message broker down); try again shortly.") from exc
    try:
        answer = result.get(timeout=settings.ROLLCALL_TASK_WAIT_SECONDS, propagate=True)
    except CeleryTimeoutError as exc:
        result.revoke()
        _discard(staged_names)
        raise RecognitionUnavailable("No recognition worker answered in time; try again shortly.") from exc
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        _discard(staged_names)
        raise RecognitionUnavailable("The recognition service connection was lost (message broker down); try again shortly.") from exc
    if isinstance(answer, dict) and "error" in answer:
        raise TaskRejected(answer["error"]["detail"], code=answer["error"]["code"])
    return answer


def _discard(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)
