"""Every page in a real browser, as a new site sees it: a real Daphne portal (websockets and all) on
its own SQLite database with the demo data and a fortnight of attendance, Debian's Chromium driven by
Playwright at 1280 and 375 px. Screenshots land in docs/screens/ (shown in the README); each page
must have no horizontal scroll at 375 px, no console error, no failed request, and no serious or
critical axe-core violation (axe.min.js is vendored in ./vendor with its licence). /api/docs/ is
loaded with every request off this machine refused: it renders offline.

Add a page: one line in PAGES (name, path, who, a selector that shows it rendered).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from recognition.tests.integration.test_production_stack import _free_port, _wait_port

ROOT = Path(__file__).resolve().parents[3]
SCREENS = ROOT / "docs" / "screens"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
USERNAME, PASSWORD = "manager", "rollcall-demo"   # seed_demo's admin
GROUP_PHOTO = ROOT / "recognition" / "fixtures" / "faces" / "two_faces.jpg"
VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "375": {"width": 375, "height": 812}}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

# (name, path, who: "anonymous" | "admin", selector that shows the page rendered). {ana} is a
# demo employee's id, {month} the month of yesterday (YYYY-MM). The /manage/ pages join this list when they exist.
PAGES: list[tuple[str, str, str, str]] = [
    ("login", "/accounts/login/", "anonymous", "form button[type=submit]"),
    ("face-login", "/accounts/face-login/", "anonymous", "#face-login"),
    ("api-docs", "/api/docs/", "anonymous", ".swagger-ui .opblock"),
    ("people", "/", "admin", "table.people"),
    ("gallery", "/people/{ana}/faces/", "admin", "figure.face"),
    ("history", "/people/{ana}/attendance/", "admin", "table.people"),
    ("me", "/me/", "admin", "h1"),
    ("today", "/reports/today/", "admin", ".board"),
    ("month", "/reports/month/?month={month}", "admin", "table.sheet"),
    ("monitor", "/monitor/", "admin", "#socket.ok"),
    ("recognise", "/recognize/", "admin", "form"),
    ("kiosk", "/kiosk/", "admin", "body[data-camera=ready]"),
    ("manage", "/manage/", "admin", "h1"),
    ("manage-people", "/manage/people/", "admin", "table"),
    ("manage-person-new", "/manage/people/new/", "admin", "form"),
    ("manage-departments", "/manage/departments/", "admin", "form"),
    ("manage-shifts", "/manage/shifts/", "admin", "h1"),
    ("manage-shift-new", "/manage/shifts/new/", "admin", "form"),
    ("manage-assignments", "/manage/assignments/", "admin", "form"),
    ("manage-holidays", "/manage/holidays/", "admin", "form"),
    ("manage-devices", "/manage/devices/", "admin", "form"),
]
NO_AXE = {"api-docs"}  # Swagger UI's own markup (third party) is not ours to fix

SEED = """
import datetime as dt
from django.core.management import call_command
from django.utils import timezone
from attendance.models import Shift, ShiftAssignment
from attendance.services import attendance_check, attendance_close_day
from portal.models import Department, Employee
call_command("seed_demo")
team = Employee.objects.get(code="M-001").department
Employee.objects.exclude(department=team).update(department=team)
shift = Shift.objects.create(name="Office", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4])
ShiftAssignment.objects.create(shift=shift, department=team, valid_from=dt.date(2020, 1, 1))
today = timezone.localdate()
people = list(Employee.objects.exclude(code="M-001").order_by("pk"))
zone = timezone.get_current_timezone()
for back in range(1, 11):
    day = today - dt.timedelta(days=back)
    if day.weekday() >= 5:
        continue
    for index, person in enumerate(people[:-1]):
        start = dt.datetime.combine(day, dt.time(8, 40), zone) + dt.timedelta(minutes=7 * index)
        attendance_check(employee=person, at=start)
        attendance_check(employee=person, at=start + dt.timedelta(hours=8, minutes=13 * index))
    attendance_close_day(day=day)
now = timezone.now()
if people:
    attendance_check(employee=people[0], at=now - dt.timedelta(minutes=30))
starter = Employee.objects.create(code="N-001", full_name="New Starter", department=team, biometric_consent_at=now)
print(people[0].pk, (today - dt.timedelta(days=1)).strftime("%Y-%m"), starter.pk)
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory) -> dict[str, object]:
    """A Daphne portal of the embedded default with the demo data; yields its URL and ids."""
    var = tmp_path_factory.mktemp("screens")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))},
           "ROLLCALL_VAR_DIR": str(var / "var"), "MEDIA_ROOT": str(var / "media"), "ROLLCALL_SCHEDULER": "off"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run([sys.executable, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    ana, month, starter = seeded.stdout.strip().splitlines()[-1].split()
    port, log = _free_port(), var / "daphne.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                    "portal.asgi:application"], cwd=ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, 90, process)
        yield {"url": f"http://127.0.0.1:{port}", "ids": {"ana": ana, "month": month, "starter": starter}, "log": log}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def _login(page, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _offline(route) -> None:
    """Nothing but this portal: a request to any other host is refused (the docs must not need it)."""
    host = urlparse(route.request.url).hostname
    if host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort("internetdisconnected")


def _browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"])


def test_every_page_at_1280_and_375(portal) -> None:
    from playwright.sync_api import sync_playwright

    base = portal["url"]
    SCREENS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            for width, viewport in VIEWPORTS.items():
                for who in ("anonymous", "admin"):
                    context = browser.new_context(viewport=viewport)
                    context.route("**/*", _offline)
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda m, errors=errors: errors.append(f"console {m.type}: {m.text}")
                            if m.type == "error" else None)
                    page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}"))
                    # (a lazy image still loading when the test moves on is aborted: not a failure)
                    page.on("requestfailed", lambda r, errors=errors: errors.append(f"request failed: {r.url} {r.failure}")
                            if "ERR_ABORTED" not in (r.failure or "") else None)
                    if who == "admin":
                        _login(page, base)
                    for name, path, owner, ready in PAGES:
                        if owner != who:
                            continue
                        errors.clear()
                        page.goto(base + path.format(**portal["ids"]))
                        page.wait_for_selector(ready, state="attached", timeout=30_000)
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=str(SCREENS / f"{name}-{width}.png"))
                        if width == "375":
                            scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                            if scroll[0] > scroll[1]:
                                problems.append(f"{name} at 375 px scrolls sideways: {scroll[0]} > {scroll[1]}")
                        problems += [f"{name} at {width}: {error}" for error in errors]
                    if who == "admin":  # the recognise page after a group photo: boxes and names drawn on it
                        errors.clear()
                        page.goto(f"{base}/recognize/")
                        page.set_input_files("input[name=photo]", str(GROUP_PHOTO))
                        page.click("form button[type=submit]")
                        page.wait_for_selector("figure.recognised svg rect", state="attached", timeout=60_000)
                        page.locator("figure.recognised").scroll_into_view_if_needed()
                        page.screenshot(path=str(SCREENS / f"recognise-result-{width}.png"))
                        problems += [f"recognise result at {width}: {error}" for error in errors]
                    context.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_the_collapsible_navigation_at_375(portal) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_context(viewport=VIEWPORTS["375"]).new_page()
            _login(page, portal["url"])
            toggle = page.locator(".nav-toggle")
            assert toggle.get_attribute("aria-expanded") == "false" and page.is_hidden("#site-nav")
            toggle.click()
            assert toggle.get_attribute("aria-expanded") == "true" and page.is_visible("#site-nav a[href='/me/']")
            page.screenshot(path=str(SCREENS / "navigation-open-375.png"))
            toggle.click()
            assert page.is_hidden("#site-nav")
            wide = browser.new_context(viewport=VIEWPORTS["1280"]).new_page()
            _login(wide, portal["url"])
            assert wide.is_hidden(".nav-toggle") and wide.is_visible("#site-nav a[href='/me/']")
            assert wide.request.get(f"{portal['url']}/favicon.ico").ok
        finally:
            browser.close()


def test_no_serious_axe_violations_on_the_main_pages(portal) -> None:
    """axe-core in the page (the test's context bypasses the CSP only to inject it)."""
    from playwright.sync_api import sync_playwright

    base, found = portal["url"], {}
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            for who in ("anonymous", "admin"):
                context = browser.new_context(viewport=VIEWPORTS["1280"], bypass_csp=True)
                page = context.new_page()
                if who == "admin":
                    _login(page, base)
                for name, path, owner, ready in PAGES:
                    if owner != who or name in NO_AXE:
                        continue
                    page.goto(base + path.format(**portal["ids"]))
                    page.wait_for_selector(ready, state="attached", timeout=30_000)
                    page.add_script_tag(path=str(AXE))
                    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
                    assert result["testEngine"]["name"] == "axe-core" and result["url"].startswith(base)
                    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
                    if bad:
                        found[name] = [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                                        "nodes": [n["target"] for n in v["nodes"][:5]]} for v in bad]
                context.close()
        finally:
            browser.close()
    assert not found, json.dumps(found, indent=1)


def test_webcam_enrolment_says_what_happened(portal, tmp_path) -> None:
    """The gallery's webcam: a frame without a face is refused with the quality gate's reason; a
    face is added in place with its thumbnail, recorded as a webcam photo."""
    from playwright.sync_api import sync_playwright

    from attendance.tests.browser.test_kiosk_browser import FIXTURE, _frames, write_y4m

    faceless = write_y4m([frame * 0 + 90 for frame in _frames(FIXTURE)[:6]], tmp_path / "blank.y4m", fps=12)
    face = write_y4m(_frames(FIXTURE)[:6], tmp_path / "face.y4m", fps=12)
    url = f"{portal['url']}/people/{portal['ids']['starter']}/faces/"
    with sync_playwright() as playwright:
        for camera, expected in ((faceless, "Photo not added: "), (face, "Photo added")):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}"])
            try:
                page = browser.new_context(viewport=VIEWPORTS["1280"]).new_page()
                _login(page, portal["url"])
                page.goto(url)
                page.click("#webcam summary")
                page.wait_for_selector("#capture:enabled", timeout=20_000)
                page.click("#capture")
                page.wait_for_selector("#camera-status.ok, #camera-status.bad", timeout=60_000)
                status = page.text_content("#camera-status")
                assert status.startswith(expected), status
                if expected == "Photo added":
                    assert page.is_visible("figure.face.new-face img") and "Webcam" in page.text_content("figure.new-face")
                    assert page.is_visible("#camera-status img.thumb")
                    page.screenshot(path=str(SCREENS / "gallery-webcam-added-1280.png"))
                else:
                    assert page.locator("figure.face").count() == 0
            finally:
                browser.close()
