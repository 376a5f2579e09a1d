"""The optional Firebase mirror of monitor events (attendance.firebase, the
``attendance.firebase_mirror`` task), off the check-in's path.

Firebase itself is outside this machine. For the Realtime Database the real ``firebase-admin``
SDK runs end to end: it honours ``FIREBASE_DATABASE_EMULATOR_HOST`` (and then sends its own
emulator credentials, so none are configured), and the test starts a small stand-in speaking the
Realtime Database REST protocol (GET/PUT/PATCH/DELETE on ``/<path>.json``) on a free loopback
port, in a thread, which can also answer slowly or fail. Cloud Firestore's client speaks gRPC
to Google; no stand-in is attempted for it, so its calls are replaced by a recorder (the one
mock here) and what is checked is RollCall's side: after commit only, no face thumbnail,
deletes, and a failing Firestore never breaks a check-in.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from attendance import events, firebase
from attendance.models import RecognitionLog
from attendance.services import check_in_submit, recognition_log_purge
from attendance.tasks import firebase_mirror
from portal.models import Employee
from portal.services import device_create, employee_delete
from recognition.models import ErasureRequest
from recognition.services import erasure_request_carry_out, face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


class RealtimeDatabaseStandIn:
    """Enough of the Realtime Database REST protocol for the SDK's set/update/delete/get: a JSON
    tree, ``/<path>.json`` addressing, PATCH merging children (null removes one)."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, namespace)
        self.delay = 0.0
        self.fail_status: int | None = None
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in.lock:
                    stand_in.requests.append((self.command, url.path, parse_qs(url.query).get("ns", [None])[0]))
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                if stand_in.fail_status:
                    self._answer(stand_in.fail_status, {"error": "stand-in failure"})
                    return
                if not url.path.endswith(".json"):
                    self._answer(400, {"error": "path must end with .json"})
                    return
                keys = [k for k in url.path[: -len(".json")].split("/") if k]
                with stand_in.lock:
                    if self.command == "GET":
                        self._answer(200, stand_in.get(keys))
                    elif self.command == "PUT":
                        value = json.loads(body)
                        stand_in.put(keys, value)
                        self._answer(200, value)
                    elif self.command == "PATCH":
                        changes = json.loads(body)
                        for child, value in changes.items():
                            stand_in.put(keys + [k for k in child.split("/") if k], value)
                        self._answer(200, changes)
                    elif self.command == "DELETE":
                        stand_in.put(keys, None)
                        self._answer(200, None)
                    else:
                        self._answer(405, {"error": "method"})

            def _answer(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                try:
                    self.send_response(status)
                except (BrokenPipeError, ConnectionResetError):
                    return
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (its timeout): what a slow server sees

            do_GET = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def get(self, keys: list[str]) -> Any:
        node: Any = self.tree
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def put(self, keys: list[str], value: Any) -> None:
        if not keys:
            self.tree = value if isinstance(value, dict) else {}
            return
        node = self.tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value

    def methods(self) -> list[str]:
        with self.lock:
            return [method for method, _, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def rtdb(monkeypatch, settings):
    stand_in = RealtimeDatabaseStandIn()
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", stand_in.host)
    settings.ROLLCALL_FIREBASE_BACKEND = "rtdb"
    settings.ROLLCALL_FIREBASE_CREDENTIALS = ""  # the SDK sends emulator credentials: none needed
    settings.ROLLCALL_FIREBASE_DATABASE_URL = "https://rollcall-test.firebaseio.com"
    settings.ROLLCALL_FIREBASE_PATH = "rollcall_events"
    settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS = 5
    settings.ROLLCALL_FIREBASE_RETRIES = 2
    settings.ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS = 0.05
    yield stand_in
    assert firebase.wait_idle(60), "the mirror's background thread did not finish"
    stand_in.close()


def _publish(employee: Employee | None, fail_after: bool = False, **fields: Any) -> RecognitionLog:
    with transaction.atomic():
        entry = RecognitionLog.objects.create(at=fields.pop("at", timezone.now()), state="done",
                                              outcome="checked_in" if employee else "unknown", employee=employee,
                                              thumbnail="monitor/x.jpg", similarity=0.93, **fields)
        events.recognition_published(entry)
        if fail_after:
            raise RuntimeError("rolled back")
    return entry


def test_the_real_sdk_writes_updates_and_deletes_on_a_realtime_database_stand_in(rtdb) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana Example")
    bo = Employee.objects.create(code="B", full_name="Bo Example")
    old = _publish(None, at=timezone.now() - dt.timedelta(days=90))
    ana_entries = [_publish(ana), _publish(ana)]
    bo_entry = _publish(bo)
    with pytest.raises(RuntimeError):
        _publish(ana, fail_after=True)
    assert firebase.wait_idle(30)
    records = rtdb.get(["rollcall_events"])
    assert set(records) == {str(e.pk) for e in (old, *ana_entries, bo_entry)}, "a rolled-back check-in was mirrored"
    record = records[str(ana_entries[0].pk)]
    assert record["employee"] == "Ana Example" and record["outcome"] == "checked_in" and record["similarity"] == 0.93
    assert "thumbnail" not in record, "a face left the portal"
    assert {ns for _, _, ns in rtdb.requests} == {"rollcall-test"}, "the SDK addressed the wrong namespace"

    # The real SDK reads back what it wrote (GET through the emulator host).
    from firebase_admin import db
    assert db.reference(f"rollcall_events/{bo_entry.pk}", app=firebase._firebase_app()).get()["employee"] == "Bo Example"

    # The nightly purge removes the old event from the mirror (one event: a DELETE).
    assert recognition_log_purge(older_than=timezone.now() - dt.timedelta(days=30)) == 1
    assert firebase.wait_idle(30)
    assert str(old.pk) not in rtdb.get(["rollcall_events"]) and rtdb.methods()[-1] == "DELETE"

    # Erasing Ana removes her two events in one multi-path update (a PATCH with nulls); Bo's stays.
    employee_delete(employee=ana)
    assert firebase.wait_idle(30)
    assert set(rtdb.get(["rollcall_events"])) == {str(bo_entry.pk)} and rtdb.methods()[-1] == "PATCH"

    # Carrying out Bo's erasure request removes his mirrored events too.
    admin = User.objects.create_superuser("root")
    erasure_request_carry_out(request=ErasureRequest.objects.create(employee=bo), handled_by=admin)
    assert firebase.wait_idle(30)
    assert not rtdb.get(["rollcall_events"])
    assert {"PUT", "PATCH", "DELETE", "GET"} <= set(rtdb.methods())


def test_a_failing_realtime_database_is_retried_then_given_up_and_the_check_in_stands(rtdb, caplog) -> None:
    rtdb.fail_status = 502
    entry = _publish(None)
    assert firebase.wait_idle(30)
    assert RecognitionLog.objects.filter(pk=entry.pk).exists()
    assert rtdb.methods() == ["PUT"] * 3, "expected one try and two retries (ROLLCALL_FIREBASE_RETRIES=2)"
    assert "gave up after 3 attempts" in caplog.text


def test_a_write_that_outlasts_the_timeout_is_abandoned_and_retried(rtdb, settings, caplog) -> None:
    settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS = 0.5
    rtdb.delay = 1.5
    _publish(None)
    assert firebase.wait_idle(60)
    assert rtdb.methods().count("PUT") >= 3, "each of the three attempts reached the server"
    assert "gave up after 3 attempts" in caplog.text and "timed out" in caplog.text


def test_on_a_worker_the_task_retries_with_celery_then_fails(rtdb, monkeypatch) -> None:
    """The Celery task itself (applied eagerly, as a worker would run it): autoretry_for retries a
    failing write max_retries times, then the task fails; a later success writes the record."""
    monkeypatch.setattr(firebase_mirror, "max_retries", 2)
    entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="unknown")
    document = {"id": entry.pk, "kind": "recognition", "outcome": "unknown"}
    rtdb.fail_status = 502
    result = firebase_mirror.apply(kwargs={"upsert": document})
    assert result.failed() and rtdb.methods() == ["PUT"] * 3
    rtdb.fail_status = None
    assert firebase_mirror.apply(kwargs={"upsert": document}).get()["upserted"] == entry.pk
    assert rtdb.get(["rollcall_events", str(entry.pk)])["outcome"] == "unknown"
    # A write still retrying when the event is purged or erased never brings it back.
    pk = entry.pk
    entry.delete()
    rtdb.put(["rollcall_events", str(pk)], None)
    assert firebase_mirror.apply(kwargs={"upsert": document}).get()["upserted"] is None
    assert not rtdb.get(["rollcall_events"]) and rtdb.methods().count("PUT") == 4


def test_a_slow_realtime_database_does_not_delay_the_check_in_answer(rtdb, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    ana = Employee.objects.create(code="A", full_name="Ana Example")
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    device, _ = device_create(name="Front door")
    frames = [people["joe_biden"][1].read_bytes()] * 3
    check_in_submit(frames=frames, device=device, key="warm-up-0001")  # models loaded, the gallery built
    # The warm-up's own mirror write done first: the test database (in-memory SQLite, shared cache)
    # refuses a write at once while another thread reads the same table, instead of waiting.
    assert firebase.wait_idle(30)
    started = time.perf_counter()
    check_in_submit(frames=frames, device=device, key="baseline-0001")  # the same check-in, Firebase quick
    baseline = time.perf_counter() - started
    assert firebase.wait_idle(30)

    rtdb.delay = 6.0
    settings.ROLLCALL_FIREBASE_TIMEOUT_SECONDS = 15  # slow, not timed out
    started = time.perf_counter()
    answer = check_in_submit(frames=frames, device=device, key="slow-mirror-0001")
    answered = time.perf_counter() - started
    entry = RecognitionLog.objects.get(key="slow-mirror-0001")
    assert answer["employee"] == "Ana Example" and answer["outcome"]  # recognised (a repeat within minutes)
    # The proof: when the answer came back, the stand-in had not finished the mirror's write yet.
    assert rtdb.get(["rollcall_events", str(entry.pk)]) is None, "the answer waited for the mirror"
    started = time.perf_counter()
    assert firebase.wait_idle(30)
    mirrored_after = answered + time.perf_counter() - started
    assert rtdb.get(["rollcall_events", str(entry.pk)])["employee"] == "Ana Example"
    print(f"\ncheck-in answered in {answered * 1000:.0f} ms with a Firebase taking {rtdb.delay:.1f} s per request "
          f"(the same check-in with a quick Firebase: {baseline * 1000:.0f} ms); mirrored {mirrored_after:.2f} s after "
          f"the check-in began")


# --- Cloud Firestore: a recorder in place of Google's gRPC service ------------------------------

class FakeFirestore:
    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self.fail = False
        self.calls = 0

    def collection(self, name: str) -> FakeCollection:
        return FakeCollection(self, name)

    def batch(self) -> FakeBatch:
        return FakeBatch(self)

    def _check(self) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("firestore.googleapis.com unreachable")


class FakeCollection:
    def __init__(self, store: FakeFirestore, name: str) -> None:
        self.store, self.name = store, name

    def document(self, key: str) -> FakeDocument:
        return FakeDocument(self.store, f"{self.name}/{key}")


class FakeDocument:
    def __init__(self, store: FakeFirestore, path: str) -> None:
        self.store, self.path = store, path

    def set(self, document: dict, timeout: float | None = None) -> None:
        assert timeout, "every Firestore call carries a timeout"
        self.store._check()
        self.store.documents[self.path] = document


class FakeBatch:
    def __init__(self, store: FakeFirestore) -> None:
        self.store, self.paths = store, []

    def delete(self, document: FakeDocument) -> None:
        self.paths.append(document.path)

    def commit(self, timeout: float | None = None) -> None:
        assert timeout
        self.store._check()
        for path in self.paths:
            self.store.documents.pop(path, None)


@pytest.fixture()
def firestore(monkeypatch, settings, tmp_path):
    import firebase_admin
    from firebase_admin import credentials
    from firebase_admin import firestore as real_firestore

    settings.ROLLCALL_FIREBASE_BACKEND = "firestore"
    settings.ROLLCALL_FIREBASE_CREDENTIALS = str(tmp_path / "service-account.json")
    settings.ROLLCALL_FIREBASE_RETRIES = 1
    settings.ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS = 0.01
    fake = FakeFirestore()
    monkeypatch.setattr(firebase, "_app", None)
    monkeypatch.setattr(credentials, "Certificate", lambda path: ("certificate", path))
    monkeypatch.setattr(firebase_admin, "initialize_app", lambda cert, options, name: ("app", cert, name))
    monkeypatch.setattr(real_firestore, "client", lambda app: fake)
    yield fake
    assert firebase.wait_idle(30)


def test_firestore_events_are_mirrored_after_commit_without_the_face_and_purged(firestore) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana Example")
    entry = _publish(ana)
    with pytest.raises(RuntimeError):
        _publish(ana, fail_after=True)
    assert firebase.wait_idle(30)
    document = firestore.documents[f"rollcall_events/{entry.pk}"]
    assert document["employee"] == "Ana Example" and document["outcome"] == "checked_in"
    assert "thumbnail" not in document
    assert len(firestore.documents) == 1, "a rolled-back check-in was mirrored"
    employee_delete(employee=ana)
    assert firebase.wait_idle(30)
    assert firestore.documents == {}


def test_a_failing_firestore_does_not_break_the_check_in(firestore, caplog) -> None:
    firestore.fail = True
    entry = _publish(None)
    assert firebase.wait_idle(30)
    assert RecognitionLog.objects.filter(pk=entry.pk).exists()
    assert firestore.calls == 2 and "could not mirror recognition" in caplog.text


def test_no_mirror_without_configuration(settings) -> None:
    settings.ROLLCALL_FIREBASE_CREDENTIALS = ""
    settings.ROLLCALL_FIREBASE_BACKEND = "rtdb"
    settings.ROLLCALL_FIREBASE_DATABASE_URL = ""
    assert not firebase.enabled()
    _publish(None)
    assert firebase.wait_idle(5) and firebase._queue.unfinished_tasks == 0


def test_deleting_monitor_rows_in_the_django_admin_removes_their_mirrored_copies(rtdb) -> None:
    from django.test import Client

    entries = [_publish(None) for _ in range(3)]
    assert firebase.wait_idle(30)
    assert set(rtdb.get(["rollcall_events"])) == {str(e.pk) for e in entries}
    admin = Client()
    admin.force_login(User.objects.create_superuser("root"))
    # One row from its own page, then the rest through the list's bulk "delete selected" action.
    assert admin.post(f"/admin/attendance/recognitionlog/{entries[0].pk}/delete/", {"post": "yes"}).status_code == 302
    assert firebase.wait_idle(30)
    assert set(rtdb.get(["rollcall_events"])) == {str(e.pk) for e in entries[1:]}
    response = admin.post("/admin/attendance/recognitionlog/", {
        "action": "delete_selected", "post": "yes", "_selected_action": [str(e.pk) for e in entries[1:]]})
    assert response.status_code == 302
    assert firebase.wait_idle(30)
    assert not RecognitionLog.objects.exists() and not rtdb.get(["rollcall_events"])
