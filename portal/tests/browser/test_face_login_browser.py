"""Face login in a real browser: Playwright drives Debian's Chromium, whose fake camera plays the
project's real face clip; the opted-in employee types their username, blinks, and is logged in.
Someone whose account has no face login is refused on the page."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import pytest
from django.contrib.auth.models import User

from attendance.tests.browser.test_kiosk_browser import _frames, write_y4m
from portal.models import Employee
from recognition.services import face_enroll

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURES = Path(__file__).resolve().parents[3] / "attendance" / "fixtures"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def _until(page, expression: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if page.evaluate(expression):
                return
        except Exception:  # noqa: BLE001 - the page navigated while it was asked; ask again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression} stayed false for {seconds} s")
        page.wait_for_timeout(200)


def _face_login(live_server, camera: Path, username: str) -> tuple[str, str]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera}", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/accounts/face-login/")
            # Polled with evaluate (page.wait_for_function's string predicate needs the eval the CSP forbids).
            _until(page, "document.getElementById('camera').videoWidth > 0", 20)
            page.fill("#face-login input[name=username]", username)
            page.click("#face-login button[type=submit]")
            _until(page, "location.pathname !== '/accounts/face-login/' || Boolean(document.getElementById('face-status')"
                         ".textContent && !/(blink…|Turn your head|Checking)/.test("
                         "document.getElementById('face-status').textContent))", 90)
            page.wait_for_load_state()
            return page.evaluate("[location.pathname, document.getElementById('face-status')?.textContent || '']")
        finally:
            browser.close()


def _employee(frame) -> Employee:
    user = User.objects.create_user("sam", password="pw-sam-123")
    employee = Employee.objects.create(user=user, code="S", full_name="Sam Selfie", face_login=True)
    face_enroll(employee=employee, data=cv2.imencode(".jpg", frame)[1].tobytes())
    return employee


def test_face_login_with_a_blink_in_a_real_browser(live_server, tmp_path: Path) -> None:
    frames = _frames(FIXTURES / "blink_2s.mp4")
    _employee(frames[0])
    path, status = _face_login(live_server, write_y4m(frames, tmp_path / "sam.y4m", fps=24), "sam")
    assert path == "/", status
    stranger_path, stranger_status = _face_login(live_server, write_y4m(frames, tmp_path / "sam2.y4m", fps=24), "nobody")
    # The one answer for every failed account.
    assert stranger_path == "/accounts/face-login/" and "not enabled" in stranger_status
