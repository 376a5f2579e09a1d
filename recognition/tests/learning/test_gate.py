"""The gate's margins: a candidate that must raise its threshold to hold strangers at the rate is
refused even while its held-out captures still pass, and the nightly job records the figures and
the reason in the version's metrics (shown on the Learning page)."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from recognition.learning import learning_nightly
from recognition.learning_gate import beats, gate_figures
from recognition.models import LearningCandidate, LearningRun, ModelVersion, StrangerSample
from recognition.selectors import build_index, gallery_base_vectors
from recognition.tests.learning.test_nightly import _sam_visits

pytestmark = pytest.mark.django_db(transaction=True)

FLOOR = 0.914


def _toward(vector: np.ndarray, cosine: float, seed: int = 3) -> np.ndarray:
    """A unit vector at exactly ``cosine`` from unit ``vector``."""
    other = np.random.default_rng(seed).normal(size=vector.shape).astype(np.float64)
    other -= (other @ vector) * vector
    other /= np.linalg.norm(other)
    return (cosine * vector + np.sqrt(1 - cosine ** 2) * other).astype(np.float32)


def test_a_candidate_that_raises_the_threshold_is_refused_for_its_shrunk_margins(site, people, blink_frames,
                                                                                  check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    for hours, image in enumerate(people["rose_leslie"]):  # a stranger at the door
        assert check_in([image.read_bytes()] * 2, hours_ago=50 + hours).outcome == "unknown"
    vectors, labels, _ = gallery_base_vectors(version=None)
    labels = np.asarray(labels)
    heldout = [(c.employee_id, c.matrix) for c in LearningCandidate.objects.all()]
    strangers = [sample.matrix for sample in StrangerSample.objects.all()]
    assert heldout and strangers

    def figures(gallery: np.ndarray, gallery_labels: np.ndarray):  # noqa: ANN202
        index = build_index(gallery, gallery_labels, dim=gallery.shape[1], cohort=None)
        return gate_figures(index, heldout=heldout, strangers=strangers, base_vectors=gallery, labels=gallery_labels,
                            rate=0.01, floor=FLOOR)

    active = figures(vectors, labels)
    assert active.recognised == 1.0 and active.margin_median > 0.03, active
    # A learned template, under Alex, that one stranger resembles: half-way between the active
    # threshold and Sam's typical score. Holding strangers at 1% now needs a higher threshold.
    rose = strangers[0].mean(axis=0)
    rose /= np.linalg.norm(rose)
    raised = active.threshold + active.margin_median / 2
    template = _toward(rose.astype(np.float64), raised)
    candidate = figures(np.vstack([vectors, template[None]]), np.append(labels, site["ALX"].pk))

    assert candidate.threshold > active.threshold + 0.01, (active, candidate)
    # What the gate looked at before: all still pass...
    assert candidate.recognised == active.recognised and candidate.misidentified <= active.misidentified
    assert candidate.strangers_accepted <= 0.01
    # ...but every held-out capture of Sam's is now closer to "Not recognised".
    assert candidate.margin_median < active.margin_median - 0.01
    accepted, reason = beats(candidate, active, rate=0.01, strict=False)
    assert not accepted and reason.startswith("held-out margins shrink"), reason
    assert f"{active.threshold:.3f} -> {candidate.threshold:.3f}" in reason
    # Within a tolerance that wide it would pass: the rule is the margin, nothing else.
    assert beats(candidate, active, rate=0.01, strict=False, tolerance=1.0)[0]


def test_the_nightly_job_records_a_refused_candidates_margins_and_reason(site, blink_frames, check_in,
                                                                        settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_MARGIN_TOLERANCE = -1.0  # demands margins grow by 1.0: nothing can pass
    _sam_visits(blink_frames, check_in)
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.decision == "rejected" and run.templates_added == 0, run.details
    assert run.details["templates_gate"]["reason"].startswith("held-out margins shrink")
    refused = ModelVersion.objects.get(state=ModelVersion.State.REJECTED)
    assert run.candidate == refused and not ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exists()
    assert refused.reason == run.details["templates_gate"]["reason"]
    for side in ("before", "after"):
        assert {"threshold", "recognised", "misidentified", "margin_median", "margin_low"} <= set(refused.metrics[side])
    assert refused.metrics["gate"] == {"accepted": False, "reason": refused.reason, "margin_tolerance": -1.0}

    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    page = admin.get("/learning/").content.decode()
    assert "held-out margins shrink" in page and "median margin" in page
    assert f"{refused.metrics['before']['margin_median']:.3f} → {refused.metrics['after']['margin_median']:.3f}" in page
