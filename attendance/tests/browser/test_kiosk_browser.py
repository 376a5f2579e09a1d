"""The kiosk page in a real browser: Playwright drives Debian's Chromium, whose fake camera plays a
real face video (a y4m made here with OpenCV from the project's fixture clip)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from attendance.models import AttendanceEvent
from conftest import browser_login, video_frames
from portal.models import Employee
from recognition.services import face_enroll

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "blink_2s.mp4"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def _frames(path: Path) -> list[np.ndarray]:
    return video_frames(path)


def write_y4m(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    """BGR frames -> a 4:2:0 YUV4MPEG2 file, the format Chromium's fake camera reads."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def _launch(playwright, camera: Path):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-video-capture={camera}", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-gpu"],
    )


def _kiosk_answer(live_server, camera: Path) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright, camera)
        try:
            page = browser.new_page()
            browser_login(page, live_server.url, "boss", "pw-boss-123", "/kiosk/")
            assert page.is_hidden("#not-authorised") and page.is_enabled("#go")
            # (selectors, not wait_for_function: the CSP forbids the eval that a string predicate needs)
            page.wait_for_selector("body[data-camera=ready]", state="attached", timeout=20_000)
            page.click("#go")
            # during the capture: the blink prompt and a countdown of the seconds left
            page.wait_for_selector("#countdown:not([hidden])", timeout=10_000)
            assert "Blink once" in page.text_content("#outcome")
            assert page.text_content("#countdown") in ("1", "2", "3")
            # while the portal checks: a spinner (the outcome's "checking" state)
            page.wait_for_selector("#outcome.checking", timeout=20_000)
            page.wait_for_selector("#outcome:not(.busy)", state="attached", timeout=90_000)
            page.wait_for_selector("#go:enabled", state="attached", timeout=5_000)
            return page.text_content("#outcome")
        finally:
            browser.close()


def test_a_kiosk_that_is_not_set_up_says_so_before_anyone_tries(live_server, tmp_path: Path) -> None:
    """No manager session and no device token: the page says so and the button is off; a token
    (even before it is checked) turns the button on, and the clock shows the site's zone."""
    from playwright.sync_api import sync_playwright

    frames = _frames(FIXTURE)[:4]
    with sync_playwright() as playwright:
        browser = _launch(playwright, write_y4m(frames, tmp_path / "idle.y4m", fps=12))
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/kiosk/")
            assert page.is_visible("#not-authorised") and page.is_disabled("#go")
            assert "not set up" in page.text_content("#outcome")
            assert page.text_content(".zone") == django_settings.TIME_ZONE
            assert page.get_attribute("#token", "id") == "token" and page.is_visible("label[for=token]")
            page.fill("#token", "a-device-token")
            page.click("#save-token")
            assert page.is_hidden("#not-authorised") and page.is_enabled("#go")
            page.click("#clear-token")
            assert page.is_disabled("#go")
        finally:
            browser.close()


@pytest.fixture()
def boss() -> User:
    user = User.objects.create_user("boss", password="pw-boss-123")
    Employee.objects.create(user=user, code="M", full_name="Boss", role="manager")
    return user


def test_an_enrolled_person_checks_in_at_the_kiosk(live_server, boss, tmp_path: Path) -> None:
    frames = _frames(FIXTURE)
    sam = Employee.objects.create(code="S", full_name="Sam Selfie")
    face_enroll(employee=sam, data=cv2.imencode(".jpg", frames[0])[1].tobytes())
    answer = _kiosk_answer(live_server, write_y4m(frames, tmp_path / "sam.y4m", fps=24))
    assert answer.startswith("Welcome, Sam — checked in"), answer
    event = AttendanceEvent.objects.get()
    assert event.employee == sam and event.kind == "in"


def test_an_unenrolled_person_is_not_recognised_and_nothing_is_written(live_server, boss, tmp_path: Path, people) -> None:
    """A live person nobody enrolled (Sam blinking; only Alex is in the gallery) is "Not
    recognised"; a photo of them held up fails liveness first, like anyone's photo."""
    alex = Employee.objects.create(code="A", full_name="Alex Example")
    face_enroll(employee=alex, data=people["alex_lacamoire"][0].read_bytes())
    answer = _kiosk_answer(live_server, write_y4m(_frames(FIXTURE), tmp_path / "sam.y4m", fps=24))
    assert answer == "Not recognised — ask your manager to add your photo.", answer
    still = _frames(FIXTURE)[0]
    answer = _kiosk_answer(live_server, write_y4m([still] * 24, tmp_path / "still.y4m", fps=12))
    assert answer.startswith("No movement seen"), answer
    assert AttendanceEvent.objects.count() == 0
