"""The gate's strangers must be clean: a near miss of an enrolled person (answered "unknown" just
below the threshold) is not kept as a stranger, and with such visits at the door the nightly job
still accepts the templates that help (before this rule every night's templates were refused: the
person's own near misses, once the templates recognised them, stood at the top of the strangers)."""

from __future__ import annotations

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


def _near_misses(blink_frames, check_in, settings, *, visits: int = 3) -> list[float]:
    """Sam comes ``visits`` times and is not recognised: the threshold stands 0.01 above his score."""
    scores = []
    for visit in range(visits):
        frames = blink_frames[1 + visit::9][:5]
        score = _closest(frames, check_in, settings, hours_ago=70 - 2 * visit)
        settings.ROLLCALL_MATCH_THRESHOLD = score + 0.01
        assert check_in(frames, hours_ago=60 - 2 * visit).outcome == "unknown"
        scores.append(score)
    settings.ROLLCALL_MATCH_THRESHOLD = None
    return scores


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


@pytest.mark.parametrize("gap", [None, 0.0])
def test_helpful_templates_pass_the_gate_although_their_person_was_missed_at_the_door(
        site, people, blink_frames, check_in, settings, gap) -> None:
    """``gap`` None: the default band (Sam's near misses are not kept); 0.0: the old rule (every
    unknown below the threshold kept), so the kept strangers include Sam himself. Either way his
    templates pass: the candidate's threshold moves only by the shift of the impostors' upper
    quantile, and the held-out captures left one out are clean impostors. (Before, the candidate's
    threshold was re-calibrated on the kept strangers alone and rose to Sam's own near misses.)"""
    settings.ROLLCALL_LIVENESS = "off"
    if gap is not None:
        settings.ROLLCALL_LEARN_STRANGER_GAP = gap
    _near_misses(blink_frames, check_in, settings)
    for hours, image in enumerate(people["rose_leslie"]):  # a real stranger at the door
        assert check_in([image.read_bytes()] * 2, hours_ago=50 + hours).outcome == "unknown"
    _sam_visits(blink_frames, check_in)
    kept = StrangerSample.objects.count()
    assert kept == len(people["rose_leslie"]) + (3 if gap == 0.0 else 0)

    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.decision == "accepted", run.details
    learned = FaceImage.objects.filter(source=FaceImage.Source.LEARNED)
    assert run.templates_added >= 1 and {f.employee_id for f in learned} == {site["SAM"].pk}
    before, after = run.details["before"], run.details["templates"]
    assert after["recognised"] >= before["recognised"] and after["misidentified"] == 0.0
    assert after["strangers_accepted"] <= before["strangers_accepted"]
    assert before["threshold"] >= 0.914 - 1e-9 and after["threshold"] >= before["threshold"]
    assert after["impostors"] > after["strangers"]  # the held-out captures, left one out, are impostors too
