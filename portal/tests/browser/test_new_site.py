"""Acceptance: a new site, in Debian's Chromium, entirely through the portal's pages.

From the demo admin login (seed_demo), an admin adds a department, a shift (with its working days
as checkboxes), assigns the shift, adds a person with a photo and a kiosk device (its token shown
once). The kiosk browser is set up with that token; the person checks in there in the morning and
out in the evening (Chromium's fake camera plays the fixture clip of that same person); the nightly
close runs through the in-process scheduler's own function; the month sheet and its XLSX show the
day with the hours worked.

The server's clock is moved to yesterday morning and evening for the two kiosk visits (the test
process serves the live server, so moving ``django.utils.timezone.now`` moves the portal's clock);
the nightly close then runs at the real time and closes yesterday, as it does every night.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
from io import StringIO
from pathlib import Path

import cv2
import pytest
from django.core.management import call_command
from django.utils import timezone

from attendance.days import local_at
from attendance.models import AttendanceEvent, AttendanceRecord
from attendance.tests.browser.test_kiosk_browser import FIXTURE, write_y4m
from conftest import browser_login, video_frames
from portal.models import Department, Device, Employee

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run"]
PERSON = "Sam Selfie"  # the person in attendance/fixtures/blink_2s.mp4 (the kiosk browser test's person)
IN_AT, OUT_AT = dt.time(8, 50), dt.time(17, 20)  # 8 h 30 worked
WORKED = 8.5 * 3600


class ServerClock:
    """Moves the portal's clock (``django.utils.timezone.now``, which every service reads)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = timezone.now
        self._monkeypatch = monkeypatch

    def set(self, when: dt.datetime) -> None:
        offset = when - self._real()
        self._monkeypatch.setattr(timezone, "now", lambda: self._real() + offset)

    def reset(self) -> None:
        self._monkeypatch.setattr(timezone, "now", self._real)


def _submit(page, button: str) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def _hours_in(values: list[object]) -> bool:
    """Whether a report row shows 8 h 30: as 8.5 hours, a duration, or h:mm text."""
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value - 8.5) < 0.02:
            return True
        if isinstance(value, dt.timedelta) and abs(value.total_seconds() - WORKED) < 60:
            return True
        if isinstance(value, dt.time) and (value.hour, value.minute) == (8, 30):
            return True
        if isinstance(value, str) and value.strip() in ("8:30", "8.5", "8.50", "8 h 30", "8h30"):
            return True
    return False


def _day_in(values: list[object], day: dt.date, header: list[object]) -> bool:
    for value in values + header:
        if value == day or (isinstance(value, dt.datetime) and value.date() == day) or value == day.isoformat():
            return True
    return False


def test_a_new_site_on_day_one(live_server, settings, monkeypatch, tmp_path: Path) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask
    from openpyxl import load_workbook
    from playwright.sync_api import sync_playwright

    from portal import scheduler

    settings.VAR_DIR = tmp_path / "var"
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls between
    # browser steps are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    call_command("seed_demo", stdout=StringIO())  # the quick start: demo admin "manager"
    # (a transactional test starts from empty tables; the attendance migration creates this row)
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="0")
    nightly, _ = PeriodicTask.objects.get_or_create(task="attendance.close_yesterday", defaults={
        "name": "Close yesterday's attendance", "crontab": crontab})

    frames = video_frames(FIXTURE)
    photo = tmp_path / "sam.jpg"
    cv2.imwrite(str(photo), frames[0])
    camera = write_y4m(frames, tmp_path / "sam.y4m", fps=24)
    today = timezone.localdate()
    yesterday = today - dt.timedelta(days=1)
    working_days = {0, 1, 2, 3, 4, yesterday.weekday()}  # Mon-Fri (and yesterday, on a Sunday or Monday run)
    clock = ServerClock(monkeypatch)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        try:
            admin = browser.new_page()
            browser_login(admin, live_server.url, "manager", "rollcall-demo", "/manage/")
            admin.get_by_role("link", name="Departments").first.click()
            admin.fill("#id_name", "Front Desk")
            _submit(admin, "Add department")
            assert "Department Front Desk added." in admin.inner_text("main")

            admin.goto(f"{live_server.url}/manage/shifts/new/")
            admin.fill("#id_name", "Desk hours")
            admin.fill("#id_start", "09:00")
            admin.fill("#id_end", "17:00")
            for day in range(7):
                admin.set_checked(f"#id_working_days_{day}", day in working_days)
            admin.fill("#id_late_grace_minutes", "10")
            _submit(admin, "Add shift")
            assert "Shift Desk hours added." in admin.inner_text("main")

            admin.goto(f"{live_server.url}/manage/assignments/")
            admin.select_option("#id_shift", label="Desk hours (09:00-17:00)")
            admin.select_option("#id_department", label="Front Desk")
            admin.fill("#id_valid_from", (today - dt.timedelta(days=7)).isoformat())
            _submit(admin, "Assign")
            assert "Desk hours → Front Desk from" in admin.inner_text("main")

            admin.goto(f"{live_server.url}/manage/people/new/")
            admin.fill("#id_code", "FD-001")
            admin.fill("#id_full_name", PERSON)
            admin.select_option("#id_department", label="Front Desk")
            admin.check("#id_consent")
            admin.set_input_files("#id_photo", str(photo))
            _submit(admin, "Add")
            assert f"Photo enrolled for {PERSON}." in admin.inner_text("main"), admin.inner_text("main")

            admin.goto(f"{live_server.url}/manage/devices/")
            admin.fill("#id_name", "Front desk kiosk")
            admin.fill("#id_location", "Reception")
            _submit(admin, "Add device")
            token = admin.input_value("#new-token")
            assert Device.for_token(token).name == "Front desk kiosk"

            # The kiosk: a browser of its own, no login, the device token pasted once. (Its CSP is
            # bypassed only so that Playwright's wait_for_function may evaluate its predicate; the
            # pages under the CSP are test_csp_browser's subject.)
            kiosk = browser.new_context(bypass_csp=True).new_page()
            kiosk.goto(f"{live_server.url}/kiosk/")
            kiosk.fill("#token", token)
            kiosk.click("#save-token")
            kiosk.wait_for_function("document.getElementById('camera').videoWidth > 0", timeout=20_000)
            answers = []
            for when in (IN_AT, OUT_AT):
                clock.set(local_at(yesterday, when))
                with kiosk.expect_response(lambda r: "/api/v1/check-ins" in r.url and r.request.method == "POST",
                                           timeout=120_000) as response:
                    kiosk.click("#go")
                answers.append(response.value.json())
                kiosk.wait_for_function("document.getElementById('go').disabled === false", timeout=30_000)
            clock.reset()
            assert [a["outcome"] for a in answers] == ["checked_in", "checked_out"], answers

            sam = Employee.objects.get(code="FD-001")
            events = list(AttendanceEvent.objects.filter(employee=sam).order_by("at"))
            assert [(e.day, e.kind, e.source) for e in events] == [
                (yesterday, "in", "device:Front desk kiosk"), (yesterday, "out", "device:Front desk kiosk")]

            # The night: the scheduler's own function runs the due nightly close.
            nightly.last_run_at = timezone.now() - dt.timedelta(days=1)
            nightly.save()
            assert scheduler.run_due(since=timezone.now()) == [nightly.name]
            record = AttendanceRecord.objects.get(employee=sam, date=yesterday)
            assert record.settled_at is not None and record.status == "present" and not record.late
            assert abs(record.worked_seconds - WORKED) < 60, record.worked_seconds

            front_desk = Department.objects.get(name="Front Desk")
            admin.goto(f"{live_server.url}/reports/month/?month={yesterday:%Y-%m}&department={front_desk.pk}")
            row = admin.locator("table.sheet tbody tr", has_text=PERSON)
            cells = [text.strip() for text in row.locator("td").all_inner_texts()]
            header = [text.strip() for text in admin.locator("table.sheet thead th").all_inner_texts()]
            day_column = header.index(str(yesterday.day))
            assert cells[day_column] == "P", (header, cells)
            assert _hours_in(cells), cells

            href = admin.locator("a[href*='xlsx']").first.get_attribute("href")
            download = admin.request.get(f"{live_server.url}{href}")
            assert download.ok
            book = load_workbook(io.BytesIO(download.body()))
            rows = [list(r) for sheet in book.worksheets for r in sheet.iter_rows(values_only=True)]
            person_rows = [r for r in rows if any(isinstance(v, str) and PERSON in v for v in r)]
            assert person_rows, rows[:5]
            header_row = next((r for r in rows if any(v is not None for v in r)), [])
            assert any(_day_in(r, yesterday, list(header_row)) and _hours_in(r) for r in person_rows), person_rows
        finally:
            clock.reset()
            browser.close()
