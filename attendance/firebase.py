"""The optional Firebase mirror of monitor events: Cloud Firestore or the Realtime Database.

Settings: ``ROLLCALL_FIREBASE_BACKEND`` (``firestore``, the default, or ``rtdb``),
``ROLLCALL_FIREBASE_CREDENTIALS`` (a service-account JSON file), ``ROLLCALL_FIREBASE_COLLECTION``
(Firestore), ``ROLLCALL_FIREBASE_DATABASE_URL`` and ``ROLLCALL_FIREBASE_PATH`` (Realtime
Database, default ``rollcall_events``), ``ROLLCALL_FIREBASE_TIMEOUT_SECONDS`` (each request) and
``ROLLCALL_FIREBASE_RETRIES``. The mirror is on when credentials are set, or for the Realtime
Database when the SDK is pointed at an emulator (``FIREBASE_DATABASE_EMULATOR_HOST`` or an
``http://...?ns=`` database URL: the SDK then uses its emulator credentials, none are needed).

Each event is one record keyed by its monitor id (``<collection or path>/<id>``) holding the
monitor payload without the face thumbnail (faces stay on the portal). The work runs in the
``attendance.firebase_mirror`` task (a worker, with Celery's retries and time limits), or in the
embedded default on this module's single background thread (``mirror_in_background``, with the
same retries), never on the check-in's path.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

DELETE_BATCH = 500  # Firestore's batch limit; one Realtime Database PATCH per batch
_APP_NAME = "rollcall"
_app_lock = threading.Lock()
_app: Any = None
_app_key: tuple | None = None


def backend() -> str:
    return (settings.ROLLCALL_FIREBASE_BACKEND or "firestore").strip().lower()


def _emulated() -> bool:
    url = settings.ROLLCALL_FIREBASE_DATABASE_URL or ""
    return bool(os.environ.get("FIREBASE_DATABASE_EMULATOR_HOST")) or url.startswith("http://")


def enabled() -> bool:
    """Whether events are mirrored at all."""
    if backend() == "rtdb":
        has_credentials = bool(settings.ROLLCALL_FIREBASE_CREDENTIALS)
        return bool(settings.ROLLCALL_FIREBASE_DATABASE_URL) and (has_credentials or _emulated())
    return bool(settings.ROLLCALL_FIREBASE_CREDENTIALS)


def _firebase_app() -> Any:
    """The SDK app, made once per process and configuration (a settings change makes a new one)."""
    import firebase_admin
    from firebase_admin import credentials

    global _app, _app_key
    key = (backend(), settings.ROLLCALL_FIREBASE_CREDENTIALS, settings.ROLLCALL_FIREBASE_DATABASE_URL,
           settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS, os.environ.get("FIREBASE_DATABASE_EMULATOR_HOST"))
    with _app_lock:
        if _app is not None and _app_key == key:
            return _app
        if _app is not None:
            try:
                firebase_admin.delete_app(_app)
            except (ValueError, TypeError):
                pass
        # Without a credentials file the SDK's application-default credential is lazy: against an
        # emulator the Realtime Database client never asks for it (it sends emulator credentials).
        path = settings.ROLLCALL_FIREBASE_CREDENTIALS
        credential = credentials.Certificate(path) if path else None
        options: dict[str, Any] = {"httpTimeout": settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS}
        if backend() == "rtdb":
            options["databaseURL"] = settings.ROLLCALL_FIREBASE_DATABASE_URL
        _app = firebase_admin.initialize_app(credential, options, name=f"{_APP_NAME}-{time.monotonic_ns()}")
        _app_key = key
        return _app


def _rtdb_root() -> Any:
    from firebase_admin import db

    return db.reference(settings.ROLLCALL_FIREBASE_PATH.strip("/") or "rollcall_events", app=_firebase_app())


def _firestore() -> Any:
    from firebase_admin import firestore

    return firestore.client(_firebase_app())


def mirror_write(*, upsert: dict[str, Any] | None = None, delete: list[int] | None = None) -> dict[str, Any]:
    """Write one event (``upsert``: the record replaces any earlier one with its id) and/or remove
    events by id; raises when Firebase fails (the caller retries)."""
    if not enabled():
        return {"mirrored": False}
    if upsert is not None and not _still_kept(int(upsert["id"])):
        upsert = None  # erased or purged while this write waited (a retry): never bring it back
    timeout = settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS
    ids = [str(int(pk)) for pk in (delete or [])]
    if backend() == "rtdb":
        root = _rtdb_root()
        if upsert is not None:
            root.child(str(int(upsert["id"]))).set(upsert)
        if len(ids) == 1:
            root.child(ids[0]).delete()
        elif ids:
            root.update({pk: None for pk in ids})  # one multi-path PATCH: null removes a child
    else:
        client = _firestore()
        collection = client.collection(settings.ROLLCALL_FIREBASE_COLLECTION)
        if upsert is not None:
            collection.document(str(int(upsert["id"]))).set(upsert, timeout=timeout)
        if ids:
            batch = client.batch()
            for pk in ids:
                batch.delete(collection.document(pk))
            batch.commit(timeout=timeout)
    return {"mirrored": True, "upserted": upsert["id"] if upsert else None, "deleted": len(ids)}


def _still_kept(entry_id: int) -> bool:
    from attendance.models import RecognitionLog

    return RecognitionLog.objects.filter(pk=entry_id).exists()


# --- The embedded default: one background thread, the same retries as the Celery task ----------

_queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=10_000)
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def mirror_in_background(**work: Any) -> None:
    """Queue mirror work for this process's background thread and return at once (best effort
    after the answer: work queued when the process stops is lost, as with a Celery message that
    no worker took; the worker setup is the durable one)."""
    global _thread
    try:
        _queue.put_nowait(work)
    except queue.Full:
        log.error("the Firebase mirror queue is full; dropped %s", _what(work))
        return
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_drain, name="firebase-mirror", daemon=True)
            _thread.start()


def _drain() -> None:
    while True:
        work = _queue.get()
        try:
            mirror_with_retries(**work)
        finally:
            _queue.task_done()


def mirror_with_retries(**work: Any) -> bool:
    """``mirror_write`` with ROLLCALL_FIREBASE_RETRIES retries and exponential backoff (1, 2, 4 s …,
    scaled by ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS); logs and gives up after the last."""
    retries = settings.ROLLCALL_FIREBASE_RETRIES
    for attempt in range(retries + 1):
        try:
            mirror_write(**work)
            return True
        except Exception:  # noqa: BLE001 - any failure of Firebase is retried, then logged
            if attempt == retries:
                log.exception("could not mirror %s to Firebase; gave up after %d attempts", _what(work), attempt + 1)
                return False
            time.sleep(settings.ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS * 2 ** attempt)
    return False


def wait_idle(timeout: float = 30.0) -> bool:
    """Block until the background thread has finished the queued work (tests, shutdown)."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _what(work: dict[str, Any]) -> str:
    if work.get("upsert"):
        return f"recognition {work['upsert'].get('id')}"
    return f"the removal of {len(work.get('delete') or [])} events"
