"""A learning run meets the world changing under it: a switch or rollback while it measured, its
own reaping while it worked, the same still photo captured twice. It never undoes the other's
work, never overwrites its own "failed", and a duplicate capture never fails the night."""

from __future__ import annotations

import pytest

from recognition import learning
from recognition.engine import get_pipeline
from recognition.learning import learning_nightly, model_version_activate
from recognition.models import FaceImage, LearningCandidate, LearningRun, ModelVersion
from recognition.tests.learning.test_nightly import _sam_visits

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_switch_during_the_run_is_never_undone_by_it(site, blink_frames, check_in, settings, monkeypatch) -> None:
    """Another version becomes active while the run measures against the one it started from: the
    run's candidate is kept as rejected ("the active version changed") and the other stays active."""
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    embedder = get_pipeline().embedder
    real_record = learning._record
    other: list[ModelVersion] = []

    def racing(run, **kwargs):  # noqa: ANN001, ANN003, ANN202 - _record's own signature
        other.append(ModelVersion.objects.create(version="switched-meanwhile", embedder=embedder.name,
                                                 embedder_version=embedder.version))
        model_version_activate(version=other[0])
        return real_record(run, **kwargs)

    monkeypatch.setattr(learning, "_record", racing)
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.decision.startswith("rejected: the active version changed"), run.decision
    assert run.templates_added == 0 and run.candidate.state == ModelVersion.State.REJECTED
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE) == other[0]
    assert not FaceImage.objects.filter(source=FaceImage.Source.LEARNED).exists()
    assert LearningCandidate.objects.filter(employee=site["SAM"]).count() == 3  # nothing consumed


def test_a_run_reaped_while_it_works_stops_and_its_failed_state_stands(site, blink_frames, check_in, settings,
                                                                       monkeypatch) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    real_housekeeping = learning.learning_housekeeping

    def reaped_meanwhile(**kwargs):  # noqa: ANN003, ANN202
        LearningRun.objects.filter(status=LearningRun.Status.RUNNING).update(
            status=LearningRun.Status.FAILED, last_error="The worker stopped (no heartbeat).")
        return real_housekeeping(**kwargs)

    monkeypatch.setattr(learning, "learning_housekeeping", reaped_meanwhile)
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FAILED and "no heartbeat" in run.last_error
    assert not ModelVersion.objects.exists() and run.decision == ""


def test_the_same_still_photo_captured_again_never_fails_the_night(site, people, check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    joe = people["joe_biden"][0].read_bytes()
    for hours in (40, 32, 24, 16):
        assert check_in([joe] * 3, hours_ago=hours).outcome in ("checked_in", "checked_out")
    assert LearningCandidate.objects.filter(employee=site["JOE"]).count() == 4
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    learned = FaceImage.objects.filter(employee=site["JOE"], source=FaceImage.Source.LEARNED)
    assert len({face.content_hash for face in learned}) == learned.count()
