"""The head-turn liveness challenge through the API, on a real clip of a person turning their head
to their right (attendance/fixtures/turn_2s.mp4): the screen asks, the burst answers."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent
from conftest import video_frames
from portal.models import Employee
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)

TURN_VIDEO = Path(__file__).resolve().parents[2] / "fixtures" / "turn_2s.mp4"


def _jpegs(frames) -> list[io.BytesIO]:
    files = []
    for index, frame in enumerate(frames):
        handle = io.BytesIO(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
        handle.name = f"{index}.jpg"
        files.append(handle)
    return files


@pytest.fixture()
def turner() -> tuple[APIClient, list]:
    frames = video_frames(TURN_VIDEO)
    performer = Employee.objects.create(code="P", full_name="Pat Performer")
    enlarged = cv2.resize(frames[0], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # the enrolment gate wants 80 px
    face_enroll(employee=performer, data=cv2.imencode(".jpg", enlarged)[1].tobytes())
    user = User.objects.create_user("boss")
    Employee.objects.create(user=user, code="M", full_name="Boss", role="manager")
    client = APIClient()
    client.force_authenticate(user)
    return client, frames


def _check_in(client: APIClient, frames, **fields):
    """POST the frames as a kiosk burst with ``fields`` (fps, challenge)."""
    return client.post("/api/v1/check-ins", {"frames": _jpegs(frames), **fields}, format="multipart")


def _challenge(client: APIClient, direction: str) -> str:
    for _ in range(40):  # the portal picks the direction at random
        answer = client.post("/api/v1/liveness/challenge").json()
        assert answer["mode"] == "challenge" and answer["prompt"].startswith("Turn your head to your ")
        if answer["direction"] == direction:
            return answer["challenge"]
    raise AssertionError("the portal never asked for " + direction)


def test_a_head_turn_the_screen_asked_for_checks_in(turner, settings) -> None:
    settings.ROLLCALL_LIVENESS = "challenge"
    client, frames = turner
    token = _challenge(client, "right")
    answer = _check_in(client, frames[::2], fps=15, challenge=token).json()
    assert answer["outcome"] == "checked_in" and answer["employee"] == "Pat Performer", answer
    assert answer["liveness"] == "ok" and AttendanceEvent.objects.count() == 1
    # The token is good once.
    again = _check_in(client, frames[::2], fps=15, challenge=token)
    assert again.status_code == 400 and again.json()["code"] == "challenge_invalid"
    forged = _check_in(client, frames[:3], challenge=token[:-3] + "abc")
    assert forged.status_code == 400 and forged.json()["code"] == "challenge_invalid"


def test_the_wrong_way_or_no_challenge_is_refused(turner, settings) -> None:
    settings.ROLLCALL_LIVENESS = "challenge"
    client, frames = turner
    token = _challenge(client, "left")
    answer = _check_in(client, frames[::2], fps=15, challenge=token).json()
    assert answer["outcome"] == "liveness_failed" and answer["message"] == "Please turn your head the other way."
    # Without a challenge (a door unit has no screen) the burst must show a blink; this one has none.
    blinkless = _check_in(client, frames[:20], fps=30).json()
    assert blinkless["outcome"] == "liveness_failed" and blinkless["liveness"] == "no_blink"
    assert AttendanceEvent.objects.count() == 0


def test_outside_the_challenge_mode_the_screen_asks_for_a_blink(settings) -> None:
    settings.ROLLCALL_LIVENESS = "blink"
    answer = APIClient().post("/api/v1/liveness/challenge").json()
    assert answer == {"mode": "blink", "challenge": None, "direction": None, "prompt": "Look at the camera and blink"}
