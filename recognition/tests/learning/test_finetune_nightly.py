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
