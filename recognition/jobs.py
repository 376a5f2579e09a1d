"""The one dispatch seam: how work leaves a service or a view and, when asked, comes back.

``run(name, ...)`` sends a task by name and waits for its dict answer; ``send_on_commit(name, ...)``
starts one once the current transaction commits, without waiting. With a message broker
configured (``ROLLCALL_TASKS_IN_PROCESS`` false) the task goes to the Celery workers; in the
embedded default the same task function is called directly in the calling thread. No
process-wide flag is set or restored on the way (Celery's eager mode pushes state on the task
object that overlapping requests under Daphne's threads set and restore out of order), so
overlapping requests run like sequential ones, with the same services and the same answers.

Uploads are staged in the shared media storage (not in broker messages). A dead broker or a
worker that does not answer in time gives a clear ``recognition_unavailable`` error, and a task
that starts after its caller gave up finds its staged file gone and does nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
import uuid
from typing import Any

from celery import Task
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from recognition.pipeline.errors import ImageTooLargeError, PipelineError

STAGING = "staging"
logger = logging.getLogger(__name__)


class RecognitionUnavailable(PipelineError):
    code = "recognition_unavailable"


class TaskRejected(PipelineError):
    """A task's typed error, carried back from the worker with its code."""


# Typed errors that say the engine, not the caller's input, is at fault (counted by /health/).
UNHEALTHY_CODES = frozenset({"recognition_unavailable", "model_unavailable"})


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


def staged_uploads_purge(*, older_than: dt.datetime) -> int:
    """Remove staged uploads left behind by a crash (a process killed between staging and the
    task taking the file); returns how many went. Called by the nightly job."""
    try:
        _, names = default_storage.listdir(STAGING)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        path = f"{STAGING}/{name}"
        try:
            if default_storage.get_modified_time(path) < older_than:
                default_storage.delete(path)
                removed += 1
        except FileNotFoundError:
            continue  # taken by a task meanwhile
    return removed


def error_result(exc: PipelineError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "detail": exc.detail}}


def _is_connection_error(exc: BaseException) -> bool:
    # Celery's Redis result consumer reports a lost connection as a RuntimeError after its retries.
    return isinstance(exc, (OperationalError, RedisError, ConnectionError)) or (
        isinstance(exc, RuntimeError) and "reconnect" in str(exc)
    )


def _app():  # noqa: ANN202 - the Celery app (imported late: settings must be configured)
    from portal.celery import app

    return app


_registry_lock = threading.Lock()


def _task(name: str) -> Task:
    """The registered task ``name`` (task modules are imported on first use)."""
    app = _app()
    tasks = app.tasks
    if name not in tasks:
        with _registry_lock:
            app.loader.import_default_modules()
    return app.tasks[name]


def run(name: str, *, staged: str | None = None, staged_frames: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the task called ``name`` and return its dict answer; typed errors come back as exceptions.

    ``staged`` / ``staged_frames`` name uploads from ``stage``: they reach the task as keyword
    arguments and are removed here when the task cannot run.
    """
    if staged is not None:
        kwargs["staged"] = staged
    if staged_frames is not None:
        kwargs["staged_frames"] = staged_frames
    staged_names = ([staged] if staged else []) + (staged_frames or [])
    try:
        answer = _run_in_process(name, kwargs) if settings.ROLLCALL_TASKS_IN_PROCESS else _run_on_worker(name, kwargs)
    except PipelineError as exc:
        _discard(staged_names)
        health.record(ok=exc.code not in UNHEALTHY_CODES)
        raise
    except BaseException:
        _discard(staged_names)
        health.record(ok=False)
        raise
    if isinstance(answer, dict) and "error" in answer:
        health.record(ok=answer["error"]["code"] not in UNHEALTHY_CODES)
        raise TaskRejected(answer["error"]["detail"], code=answer["error"]["code"])
    health.record(ok=True)
    return answer


def _run_in_process(name: str, kwargs: dict[str, Any]) -> Any:
    return run_in_process(name, **kwargs)


def run_in_process(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the task ``name``'s own function in this thread: no Celery request, eager state or
    broker involved (the embedded default, and the in-process scheduler)."""
    return _task(name).run(*args, **kwargs)


def _run_on_worker(name: str, kwargs: dict[str, Any]) -> Any:
    try:
        result = _app().send_task(name, kwargs=kwargs)
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        raise RecognitionUnavailable("The recognition service is unreachable (message broker down); try again shortly.") from exc
    try:
        return result.get(timeout=settings.ROLLCALL_TASK_WAIT_SECONDS, propagate=True)
    except CeleryTimeoutError as exc:
        result.revoke()
        raise RecognitionUnavailable("No recognition worker answered in time; try again shortly.") from exc
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        raise RecognitionUnavailable("The recognition service connection was lost (message broker down); try again shortly.") from exc


def send_on_commit(name: str, *, detached: bool = False, **kwargs: Any) -> None:
    """Start the task ``name`` once the current transaction commits (at once outside one), without
    waiting for it: a worker never sees a row that was rolled back. In the embedded default it
    runs in the committing thread, as the management commands expect, or, ``detached`` (a long
    job started from a page) and with ROLLCALL_DETACHED_JOBS, on a thread of its own."""
    transaction.on_commit(lambda: _send(name, kwargs, detached=detached))


def _send(name: str, kwargs: dict[str, Any], *, detached: bool = False) -> None:
    if settings.ROLLCALL_TASKS_IN_PROCESS:
        if detached and settings.ROLLCALL_DETACHED_JOBS:
            threading.Thread(target=_run_detached, args=(name, kwargs), name=f"rollcall-{name}", daemon=True).start()
        else:
            run_in_process(name, **kwargs)
        return
    try:
        _app().send_task(name, kwargs=kwargs)
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        # What was committed stands; the job's missing heartbeat gets it restarted later.
        logger.warning("could not send %s (broker down): %s", name, exc)


def _run_detached(name: str, kwargs: dict[str, Any]) -> None:
    """A detached job's thread: the task's own function, its failure logged (the job's row records
    it), and this thread's database connection closed at the end."""
    try:
        run_in_process(name, **kwargs)
    except Exception:
        logger.exception("the detached job %s failed", name)
    finally:
        connections.close_all()


def _discard(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


class _Health:
    """Recent outcomes of recognition calls in this process, for /health/: a call that failed
    for a reason other than the caller's input (broker down, no worker, a crash) counts."""

    WINDOW = 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: collections.deque[tuple[float, bool]] = collections.deque(maxlen=self.WINDOW)
        self._last_failure: dt.datetime | None = None

    def record(self, *, ok: bool) -> None:
        with self._lock:
            self._outcomes.append((time.monotonic(), ok))
            if not ok:
                self._last_failure = timezone.now()

    def snapshot(self, *, within_seconds: float = 300.0) -> dict[str, Any]:
        """Calls in the last ``within_seconds``: how many, how many failed, whether the latest
        ones all failed (``failing``: three or more in a row)."""
        horizon = time.monotonic() - within_seconds
        with self._lock:
            recent = [ok for at, ok in self._outcomes if at >= horizon]
            last_failure = self._last_failure
        streak = 0
        for ok in reversed(recent):
            if ok:
                break
            streak += 1
        return {"calls": len(recent), "failures": recent.count(False), "failing": streak >= 3,
                "last_failure": last_failure.isoformat() if last_failure else None}


health = _Health()


PING_TIMEOUT_SECONDS = 3.0
PING_CACHE_SECONDS = 15.0
_ping_lock = threading.Lock()
_last_ping: tuple[float, str] | None = None


def _ping_workers() -> str:
    """A real round trip through the broker to a worker (cached briefly: /health/ may be polled)."""
    global _last_ping
    with _ping_lock:
        if _last_ping is not None and time.monotonic() - _last_ping[0] < PING_CACHE_SECONDS:
            return _last_ping[1]
        try:
            result = _app().send_task("recognition.ping")
            state = "ok" if result.get(timeout=PING_TIMEOUT_SECONDS) == {"pong": True} else "wrong answer"
        except CeleryTimeoutError:
            result.revoke()
            state = f"no worker answered in {PING_TIMEOUT_SECONDS:.0f} s"
        except Exception as exc:  # noqa: BLE001 - any failure is a finding to report
            state = "broker unreachable" if _is_connection_error(exc) else f"error: {type(exc).__name__}"
        _last_ping = (time.monotonic(), state)
        return state


def recognition_check() -> dict[str, Any]:
    """Whether recognition really answers, cheaply: how the last calls of this process went, and
    with a broker a ping round trip to a worker. ``ok`` is false when either says it does not."""
    check: dict[str, Any] = {"mode": "in_process" if settings.ROLLCALL_TASKS_IN_PROCESS else "workers"}
    check.update(health.snapshot())
    healthy = not check["failing"]
    if settings.ROLLCALL_TASKS_IN_PROCESS:
        try:
            _task("recognition.face_detect")
        except KeyError:
            check["tasks"] = "not registered"
            healthy = False
    else:
        check["workers"] = _ping_workers()
        healthy = healthy and check["workers"] == "ok"
    from recognition.engine import get_pipeline

    check["models_loaded"] = bool(get_pipeline.cache_info().currsize)
    check["ok"] = healthy
    return check
