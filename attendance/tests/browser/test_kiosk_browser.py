"""The kiosk page in a real browser: Playwright drives Debian's Chromium, whose fake camera plays a
real face video (a y4m made here with OpenCV from the project's fixture clip)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
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


def _kiosk_answer(live_server, camera: Path) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera}", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            browser_login(page, live_server.url, "boss", "pw-boss-123", "/kiosk/")
            page.wait_for_function("document.getElementById('camera').videoWidth > 0", timeout=20_000)
            page.click("#go")
            page.wait_for_function(
                "!['Hold still and blink…', 'Checking…'].includes(document.getElementById('outcome').textContent)"
                " && document.getElementById('go').disabled === false", timeout=90_000)
            return page.text_content("#outcome")
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
    sam = Employee.objects.create(code="S", full_name="Sam Selfie")
    face_enroll(employee=sam, data=cv2.imencode(".jpg", _frames(FIXTURE)[0])[1].tobytes())
    stranger = cv2.imread(str(people["alex_lacamoire"][1]))
    stranger = cv2.resize(stranger, (640, int(stranger.shape[0] * 640 / stranger.shape[1])) )
    stranger = stranger[: stranger.shape[0] // 2 * 2]
    answer = _kiosk_answer(live_server, write_y4m([stranger] * 24, tmp_path / "stranger.y4m", fps=12))
    assert answer == "Not recognised.", answer
    assert AttendanceEvent.objects.count() == 0
