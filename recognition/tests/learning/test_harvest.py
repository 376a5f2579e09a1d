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


def test_a_corrected_night_shifts_captures_are_purged_with_its_morning_and_no_other_days(site, people, settings) -> None:
    """A manager corrects a night (a wrong person let in): every capture of that attendance day is
    dropped by the nightly purge, its morning check-out (the next calendar day) included, and the
    following night's captures stay."""
    import datetime as dt

    from django.contrib.auth.models import User
    from django.utils import timezone

    from attendance.models import AttendanceRecord, Shift, ShiftAssignment
    from attendance.services import attendance_correct, kiosk_check_in
    from recognition.learning import learning_purge

    settings.ROLLCALL_LIVENESS = "off"
    joe = site["JOE"]
    night = Shift.objects.create(name="Night", start=dt.time(22), end=dt.time(6), working_days=[0, 1, 2, 3, 4, 5, 6])
    ShiftAssignment.objects.create(shift=night, employee=joe, valid_from=dt.date(2026, 1, 1))
    first = timezone.localdate() - dt.timedelta(days=3)
    frames = [people["joe_biden"][1].read_bytes()] * 3
    for day, time in ((first, dt.time(22, 5)), (first + dt.timedelta(days=1), dt.time(6, 5)),
                      (first + dt.timedelta(days=1), dt.time(22, 10))):
        at = timezone.make_aware(dt.datetime.combine(day, time))
        assert kiosk_check_in(frames=frames, captured_at=at, source="kiosk").employee_id == joe.pk
    assert LearningCandidate.objects.filter(employee=joe).count() == 3
    record = AttendanceRecord.objects.get(employee=joe, date=first)
    assert record.first_in is not None and record.last_out is not None  # the night's in and its morning out
    attendance_correct(record=record, changed_by=User.objects.create_user("boss"), reason="Someone else at the door",
                       status=record.status)
    assert learning_purge() == 2
    kept = LearningCandidate.objects.get(employee=joe)
    assert timezone.localtime(kept.captured_at).time() == dt.time(22, 10)
