"""The gate's strangers must be clean: a near miss of an enrolled person (answered "unknown" just
below the threshold) is not kept as a stranger, and with such visits at the door the nightly job
still accepts the templates that help (before this rule every night's templates were refused: the
person's own near misses, once the templates recognised them, stood at the top of the strangers)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from recognition.learning import learning_nightly
from recognition.models import FaceImage, LearningRun, StrangerSample
from recognition.tests.learning.test_nightly import _sam_visits

pytestmark = pytest.mark.django_db(transaction=True)


def _closest(frames: list[bytes], check_in, settings, *, hours_ago: float) -> float:
    """The burst's best score as the check-in service computes it (learning off: nothing kept)."""
    settings.ROLLCALL_LEARN, settings.ROLLCALL_MATCH_THRESHOLD = False, 1.5
    outcome = check_in(frames, hours_ago=hours_ago)
    settings.ROLLCALL_LEARN = True
    assert outcome.outcome == "unknown" and outcome.similarity is not None, outcome
    return outcome.similarity


def test_a_near_miss_of_an_enrolled_person_is_not_kept_as_a_stranger(site, people, blink_frames, check_in,
                                                                     settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    assert settings.ROLLCALL_LEARN_STRANGER_GAP >= 0.02
    barack = [people["barack_obama"][1].read_bytes()] * 2
    score = _closest(barack, check_in, settings, hours_ago=9)
    settings.ROLLCALL_MATCH_THRESHOLD = score + 0.01  # Barack is not recognised: a near miss
    assert check_in(barack, hours_ago=8).outcome == "unknown"
    assert not StrangerSample.objects.exists()
    rose = people["rose_leslie"][0].read_bytes()  # a real stranger, far below the threshold
    assert check_in([rose] * 2, hours_ago=7).outcome == "unknown"
    assert StrangerSample.objects.count() == 1
    # The rule is the band: without it (the old rule, below the threshold) Barack would be kept.
    settings.ROLLCALL_LEARN_STRANGER_GAP = 0.0
    assert check_in(barack, hours_ago=6).outcome == "unknown"
    assert StrangerSample.objects.count() == 2


def _blurred(frames: list[bytes], sigma: float) -> list[bytes]:
    """The same views out of focus: Sam as a door camera sometimes sees him (a weaker score)."""
    out = []
    for data in frames:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        out.append(cv2.imencode(".jpg", cv2.GaussianBlur(image, (0, 0), sigma))[1].tobytes())
    return out


@pytest.mark.parametrize("gap", [None, 0.0])
def test_helpful_templates_pass_the_gate_although_their_person_was_missed_at_the_door(
        site, people, blink_frames, check_in, settings, gap) -> None:
    """Sam is sometimes seen out of focus and answered "unknown" just below the threshold (the site
    runs at a threshold ``limit`` between his blurred and his sharp visits). With the default band
    those near misses are not kept as strangers; with no band (``gap`` 0.0, the old rule) they are,
    so the kept strangers include Sam himself. Either way his learned templates pass: the candidate's
    threshold moves only by the shift of the impostors' upper quantile, with the held-out captures
    left one out among the impostors (bench/adaptation.py on LFW: before, no template was accepted
    in five nights, the candidate's threshold re-calibrated up to the employees' own near misses)."""
    settings.ROLLCALL_LIVENESS = "off"
    if gap is not None:
        settings.ROLLCALL_LEARN_STRANGER_GAP = gap
    missed = [_blurred(blink_frames[1 + visit::9][:5], sigma=6.0) for visit in range(4)]
    scores = [_closest(frames, check_in, settings, hours_ago=90 - visit) for visit, frames in enumerate(missed)]
    sharp = _closest(blink_frames[::3], check_in, settings, hours_ago=80)
    limit = max(scores) + 0.005  # the blurred visits are near misses; the sharp ones must be safe
    assert sharp >= limit + settings.ROLLCALL_LEARN_MARGIN + 0.01 and min(scores) >= limit - 0.03, (scores, sharp)
    settings.ROLLCALL_MATCH_THRESHOLD = limit
    for visit, frames in enumerate(missed):
        assert check_in(frames, hours_ago=60 - 2 * visit).outcome == "unknown"
    for hours, image in enumerate(people["rose_leslie"]):  # a real stranger at the door
        assert check_in([image.read_bytes()] * 2, hours_ago=50 + hours).outcome == "unknown"
    _sam_visits(blink_frames, check_in)
    assert StrangerSample.objects.count() == len(people["rose_leslie"]) + (len(missed) if gap == 0.0 else 0)

    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.decision == "accepted", (scores, sharp, run.details)
    learned = FaceImage.objects.filter(source=FaceImage.Source.LEARNED)
    assert run.templates_added >= 1 and {f.employee_id for f in learned} == {site["SAM"].pk}
    before, after = run.details["before"], run.details["templates"]
    assert after["recognised"] >= before["recognised"] and after["misidentified"] == 0.0
    assert after["strangers_accepted"] <= before["strangers_accepted"]
    assert before["threshold"] >= limit - 1e-9 and after["threshold"] >= before["threshold"]
    assert after["impostors"] > after["strangers"]  # the held-out captures, left one out, are impostors too
