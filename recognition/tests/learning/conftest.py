"""Fixtures of the learning tests: a small site of real people (fixture photos and the blink
video's person), check-ins through the real check-in service at chosen capture times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from django.utils import timezone

from attendance.services import KioskOutcome, kiosk_check_in
from conftest import video_frames
from portal.models import Employee
from recognition.services import face_enroll

VIDEO = Path(__file__).resolve().parents[3] / "attendance" / "fixtures" / "blink_2s.mp4"


def jpeg(frame_bgr) -> bytes:
    return cv2.imencode(".jpg", frame_bgr)[1].tobytes()


@pytest.fixture(scope="session")
def blink_frames() -> list[bytes]:
    """The blink burst (48 frames, one real person who blinks), as a kiosk sends it."""
    return [jpeg(frame) for frame in video_frames(VIDEO)]


@pytest.fixture
def site(people, blink_frames, settings) -> dict[str, Employee]:
    """Sam (the blink video's person, enrolled from its first frame), Barack, Joe and Alex enrolled
    from their first photo; everyone consented to biometric processing except ``noconsent``
    (Kit, enrolled from his first photo). Rose is not enrolled: a stranger."""
    settings.TIME_ZONE = "UTC"
    settings.ROLLCALL_LEARN_WITHOUT_LIVENESS = True  # tests check in still photos with liveness off
    now = timezone.now()
    staff = {}
    for code, name, data in [("SAM", "Sam Selfie", blink_frames[0]),
                             ("OBA", "Barack Example", people["barack_obama"][0].read_bytes()),
                             ("JOE", "Joe Example", people["joe_biden"][0].read_bytes()),
                             ("ALX", "Alex Example", people["alex_lacamoire"][0].read_bytes())]:
        staff[code] = Employee.objects.create(code=code, full_name=name, biometric_consent_at=now)
        face_enroll(employee=staff[code], data=data)
    staff["noconsent"] = Employee.objects.create(code="KIT", full_name="Kit Example")
    face_enroll(employee=staff["noconsent"], data=people["kit_harington"][0].read_bytes())
    return staff


@pytest.fixture
def check_in() -> Callable[..., KioskOutcome]:
    """A check-in through the real service, captured ``hours_ago`` hours before the latest 23:00
    site time that has passed (so the visits of one test are never the same visit, and visits
    less than 23 hours apart fall on one site day whenever the tests run)."""

    today = timezone.localdate()
    base = timezone.make_aware(dt.datetime.combine(today, dt.time(23)))
    if base > timezone.now():
        base = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=1), dt.time(23)))

    def run(frames: list[bytes], *, hours_ago: float) -> KioskOutcome:
        return kiosk_check_in(frames=frames, captured_at=base - dt.timedelta(hours=hours_ago), source="kiosk")

    return run
