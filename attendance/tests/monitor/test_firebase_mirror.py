"""The optional Firestore mirror of monitor events. Firebase is outside this machine, so the
firebase_admin calls are replaced by a recorder here (the one mock in these tests); what is
checked is RollCall's side: after commit only, no face thumbnail, and a failing Firebase never
breaks the check-in."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from attendance import events
from attendance.models import RecognitionLog
from portal.models import Employee

pytestmark = pytest.mark.django_db(transaction=True)


class FakeFirestore:
    def __init__(self, fail: bool = False) -> None:
        self.documents: dict[str, dict] = {}
        self.fail = fail

    def collection(self, name: str) -> FakeFirestore:
        self.name = name
        return self

    def document(self, key: str) -> FakeFirestore:
        self.key = key
        return self

    def set(self, document: dict) -> None:
        if self.fail:
            raise ConnectionError("firestore.googleapis.com unreachable")
        self.documents[f"{self.name}/{self.key}"] = document


@pytest.fixture()
def firestore(monkeypatch, settings, tmp_path):
    import firebase_admin
    from firebase_admin import credentials
    from firebase_admin import firestore as real_firestore

    settings.ROLLCALL_FIREBASE_CREDENTIALS = str(tmp_path / "service-account.json")
    fake = FakeFirestore()
    monkeypatch.setattr(events, "_firebase_app", None)
    monkeypatch.setattr(credentials, "Certificate", lambda path: ("certificate", path))
    monkeypatch.setattr(firebase_admin, "initialize_app", lambda cert, name: ("app", cert, name))
    monkeypatch.setattr(real_firestore, "client", lambda app: fake)
    return fake


def _publish(employee: Employee | None, fail_after: bool = False) -> RecognitionLog:
    with transaction.atomic():
        entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="checked_in", employee=employee,
                                              thumbnail="monitor/x.jpg", similarity=0.93)
        events.recognition_published(entry)
        if fail_after:
            raise RuntimeError("rolled back")
    return entry


def test_events_are_mirrored_after_commit_without_the_face(firestore, settings) -> None:
    ana = Employee.objects.create(code="A", full_name="Ana Example")
    entry = _publish(ana)
    document = firestore.documents[f"rollcall_events/{entry.pk}"]
    assert document["employee"] == "Ana Example" and document["outcome"] == "checked_in"
    assert "thumbnail" not in document
    with pytest.raises(RuntimeError):
        _publish(ana, fail_after=True)
    assert len(firestore.documents) == 1, "a rolled-back check-in was mirrored"


def test_a_failing_firebase_does_not_break_the_check_in(firestore, caplog) -> None:
    firestore.fail = True
    entry = _publish(None)
    assert RecognitionLog.objects.filter(pk=entry.pk).exists()
    assert "could not mirror recognition" in caplog.text
