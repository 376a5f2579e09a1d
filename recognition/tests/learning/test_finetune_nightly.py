"""The nightly job with fine-tuning (recognition.pipeline.finetune, helper module): a real training
run on real captures yields a candidate head the gate accepts or refuses with its figures kept;
rollback restores the previous answers exactly. Skipped where the training module is absent."""

from __future__ import annotations

import pytest

from recognition.learning import learning_nightly, learning_rollback
from recognition.models import LearningRun, ModelVersion
from recognition.services import face_recognize
from recognition.tests.learning.test_nightly import _answers, _sam_visits

pytest.importorskip("recognition.pipeline.finetune")

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fine_tuned_head_is_gated_recorded_and_rolled_back_exactly(site, people, blink_frames, check_in,
                                                                      settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_MAX_MINUTES = 0.2
    probes = [blink_frames[45], people["barack_obama"][1].read_bytes(), people["rose_leslie"][1].read_bytes()]
    before = _answers(probes)
    _sam_visits(blink_frames, check_in)
    for hours, name in enumerate(("barack_obama", "joe_biden")):
        check_in([people[name][1].read_bytes()] * 2, hours_ago=40 + hours)
    run = learning_nightly(finetune=True)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    tuned = run.details["finetuned"]
    assert tuned["steps"] > 0 and "recognised" in tuned and tuned["reason"]
    if tuned["accepted"]:
        active = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)
        assert active.head_path and len(active.checksum) == 64 and len(active.losses) >= 2
        assert face_recognize(data=probes[0])  # recognition runs under the head
    else:
        rejected = ModelVersion.objects.get(pk=tuned["version_id"])
        assert rejected.state == ModelVersion.State.REJECTED and rejected.reason and rejected.metrics["after"]
    while learning_rollback() is not None:
        pass
    assert _answers(probes) == before


def test_a_damaged_trained_head_is_refused_by_the_nightly_job(site, people, blink_frames, check_in, settings,
                                                             monkeypatch) -> None:
    """The training is made to hand back a collapsed head (random low-rank weights): the nightly
    job's gate refuses it, keeps it as a rejected version with its figures, and recognition keeps
    answering as before."""
    import numpy as np

    from recognition import learning
    from recognition.pipeline import finetune

    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_MAX_MINUTES = 0.1
    _sam_visits(blink_frames, check_in)
    for hours, name in enumerate(("barack_obama", "joe_biden")):
        check_in([people[name][1].read_bytes()] * 2, hours_ago=40 + hours)
    real_train = learning._train

    def damaged(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        result = real_train(*args, **kwargs)
        dim = result.head.dim
        rng = np.random.default_rng(7)
        collapsed = (rng.normal(size=(dim, 4)) @ rng.normal(size=(4, dim))).astype(np.float32)
        result.head = finetune.ProjectionHead(collapsed)
        return result

    monkeypatch.setattr(learning, "_train", damaged)
    probes = [blink_frames[45], people["barack_obama"][1].read_bytes(), people["rose_leslie"][1].read_bytes()]
    run = learning_nightly(finetune=True)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    tuned = run.details["finetuned"]
    assert not tuned["accepted"] and tuned["reason"], tuned
    rejected = ModelVersion.objects.get(pk=tuned["version_id"])
    assert rejected.state == ModelVersion.State.REJECTED and rejected.reason == tuned["reason"]
    active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
    assert active is None or not active.head_path  # no version runs under the damaged head
    answers = _answers(probes)
    assert answers[0][0][0] == site["SAM"].pk and answers[0][-2]  # Sam still recognised
