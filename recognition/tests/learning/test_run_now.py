"""Run now and the schedule: the page returns at once while the run works on its own thread (the
embedded default), a dead run is reaped where it is shown, and the schedule never starts a run
beside one already going."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from recognition import learning
from recognition.models import LearningRun
from recognition.tasks import learning_nightly as nightly_task

pytestmark = pytest.mark.django_db(transaction=True)


def _admin() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    return client


def _wait(predicate, seconds: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_run_now_returns_at_once_and_the_page_follows_the_run(monkeypatch, settings) -> None:
    """The job (slowed by a gate the test holds) runs on its own thread: the POST has returned while
    it runs, the page offers no second Run now and shows its progress, and a second press names
    the run already going. Released, the run finishes."""
    settings.ROLLCALL_DETACHED_JOBS = True
    release, entered = threading.Event(), threading.Event()

    def slow_nightly(*, run=None, finetune=None, trigger="command"):  # noqa: ANN001, ANN202 - the job's signature
        # No write until released: the test database (SQLite shared cache) fails a second writer at once.
        entered.set()
        release.wait(30)
        LearningRun.objects.filter(pk=run.pk).update(status="finished", progress=1.0, stage="done",
                                                     finished_at=timezone.now())
        return LearningRun.objects.get(pk=run.pk)

    monkeypatch.setattr(learning, "learning_nightly", slow_nightly)
    admin = _admin()
    try:
        started = time.monotonic()
        response = admin.post("/learning/run/")
        assert response.status_code == 302 and time.monotonic() - started < 5
        assert entered.wait(10), "the job did not start"
        run = LearningRun.objects.get()
        page = admin.get("/learning/").content.decode()
        assert 'id="run-now"' in page and "disabled" in page.split('id="run-now"')[1].split(">")[0]
        assert f'data-url="/learning/runs/{run.pk}/progress/"' in page
        again = admin.post("/learning/run/", follow=True).content.decode()
        assert f"Learning run {run.pk} is already queued" in again and LearningRun.objects.count() == 1
    finally:
        release.set()
    assert _wait(lambda: LearningRun.objects.get().status == "finished")


def test_a_dead_run_is_reaped_where_it_is_shown_and_the_schedule_never_overlaps_a_live_one(settings) -> None:
    settings.ROLLCALL_DETACHED_JOBS = False
    old = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS + 60)
    dead = LearningRun.objects.create(status="running", stage="fine-tuning", progress=0.5, heartbeat_at=old)
    admin = _admin()
    progress = admin.get(f"/learning/runs/{dead.pk}/progress/").json()
    assert progress["status"] == "failed"
    page = admin.get("/learning/").content.decode()
    assert "disabled" not in page.split('id="run-now"')[1].split(">")[0]

    live = LearningRun.objects.create(status="running", stage="fine-tuning", progress=0.5, heartbeat_at=timezone.now())
    answer = nightly_task.run()  # the beat entry's call: no run id
    assert answer["run_id"] == live.pk and answer["status"] == "running"  # the live run, left be
    assert LearningRun.objects.count() == 2
    # A run reaped while it waited in the queue is not started when its message finally arrives.
    stale = LearningRun.objects.create(status="queued", heartbeat_at=old)
    LearningRun.objects.filter(pk=live.pk).update(status="finished")
    admin.get("/learning/")  # reaps it
    assert nightly_task.run(run_id=stale.pk)["status"] == "failed"
    assert LearningRun.objects.get(pk=stale.pk).stage != "done"


def test_training_reports_that_it_is_alive(monkeypatch) -> None:
    """A long fine-tuning keeps the run's heartbeat fresh (else it would be reaped as dead)."""
    import numpy as np

    from recognition.pipeline import finetune

    monkeypatch.setattr(finetune, "HEARTBEAT_SECONDS", 0.0)
    beats: list[float] = []
    rng = np.random.default_rng(0)
    anchors = rng.normal(size=(8, 16)).astype(np.float32)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    positives = anchors + 0.1 * rng.normal(size=anchors.shape).astype(np.float32)
    labels = np.arange(8)
    finetune.train_head(anchors=anchors, anchor_labels=labels, positives=positives, positive_labels=labels,
                        max_steps=5, patience=100, heartbeat=beats.append)
    assert len(beats) >= 4 and all(0.0 <= b <= 1.0 for b in beats)
