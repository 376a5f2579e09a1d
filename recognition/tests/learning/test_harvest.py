"""Harvest: only accepted, live, safely recognised check-ins of consenting people are kept for
learning; unknown faces' views are kept (vectors only) as the gate's strangers."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from recognition.models import LearningCandidate, StrangerSample

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_safe_live_check_in_is_kept_with_its_views_and_crop(site, blink_frames, check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "blink"
    outcome = check_in(blink_frames, hours_ago=5)
    assert outcome.outcome == "checked_in" and outcome.employee_id == site["SAM"].pk
    candidate = LearningCandidate.objects.get()
    assert candidate.employee_id == site["SAM"].pk and candidate.log_id is not None
    assert candidate.views >= 3 and candidate.matrix.shape == (candidate.views, candidate.dim)
    assert candidate.score >= outcome.similarity - 1e-6 and candidate.gap >= settings.ROLLCALL_LEARN_GAP
    assert default_storage.exists(candidate.crop.name)

    # The same visit again (repeated) is never kept.
    assert check_in(blink_frames, hours_ago=5 - 1 / 60).outcome == "repeated"
    assert LearningCandidate.objects.count() == 1


def test_liveness_failures_unknown_faces_and_people_without_consent_are_never_kept(site, people, blink_frames,
                                                                                   check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "blink"
    still = [blink_frames[0]] * 12  # a photo held up: no blink
    assert check_in(still, hours_ago=6).outcome == "liveness_failed"
    settings.ROLLCALL_LIVENESS = "off"
    stranger = people["rose_leslie"][0].read_bytes()
    assert check_in([stranger] * 3, hours_ago=5).outcome == "unknown"
    kit = people["kit_harington"][1].read_bytes()  # enrolled, recognised, but no biometric consent
    assert check_in([kit] * 3, hours_ago=4).outcome == "checked_in"
    assert not LearningCandidate.objects.exists()
    sample = StrangerSample.objects.get()  # the unknown face's views, no image and no identity
    assert sample.matrix.shape[0] >= 1


def test_a_near_tie_between_two_people_is_not_safe(site, people, check_in, settings) -> None:
    """A look-alike: two employees enrolled with photos of one face; a check-in of that face is
    accepted (the rules pick one) but never learned from (no gap to the second person)."""
    settings.ROLLCALL_LIVENESS = "off"
    from portal.models import Employee
    from recognition.services import face_enroll

    for code, photo in (("TW1", 0), ("TW2", 1)):
        twin = Employee.objects.create(code=code, full_name=f"Twin {code}", biometric_consent_at=site["SAM"].biometric_consent_at)
        face_enroll(employee=twin, data=people["barack_obama"][photo].read_bytes())
    site["OBA"].delete()
    outcome = check_in([people["barack_obama"][2].read_bytes()] * 3, hours_ago=3)
    assert outcome.outcome in ("checked_in", "unknown")
    assert not LearningCandidate.objects.exists()


def test_nothing_is_learned_from_a_check_in_whose_liveness_was_not_checked(site, people, check_in, settings) -> None:
    """With liveness off the check-in is accepted but no capture is kept, unless the site says
    ROLLCALL_LEARN_WITHOUT_LIVENESS (the tests and the bench, which send still photos)."""
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_WITHOUT_LIVENESS = False
    joe = people["joe_biden"][0].read_bytes()
    assert check_in([joe] * 3, hours_ago=5).outcome == "checked_in"
    assert not LearningCandidate.objects.exists()
    settings.ROLLCALL_LEARN_WITHOUT_LIVENESS = True
    assert check_in([joe] * 3, hours_ago=2).outcome == "checked_out"
    assert LearningCandidate.objects.filter(employee=site["JOE"]).count() == 1
