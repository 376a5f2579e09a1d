"""The Content-Security-Policy in a real browser: Swagger UI (from drf-spectacular-sidecar) renders
the API docs, and the pages run their scripts, with no policy violation."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User

from portal.models import Department, Employee

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_swagger_ui_and_pages_run_under_the_csp(live_server) -> None:
    from playwright.sync_api import sync_playwright

    from conftest import browser_login

    team = Department.objects.create(name="Team")
    user = User.objects.create_user("boss", password="pw-boss-csp-123")
    boss = Employee.objects.create(user=user, code="B", full_name="Boss", role="manager", department=team)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.add_init_script(RECORD_VIOLATIONS)
            console = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "RollCall API" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.evaluate("window.__violations") == [], page.evaluate("window.__violations")
            browser_login(page, live_server.url, "boss", "pw-boss-csp-123", f"/people/{boss.pk}/faces/")
            for path in (f"/people/{boss.pk}/faces/", "/reports/month/", "/monitor/", "/kiosk/"):
                page.goto(f"{live_server.url}{path}")
                page.wait_for_load_state("networkidle")
                assert page.evaluate("window.__violations") == [], (path, page.evaluate("window.__violations"))
            assert not [text for text in console if "Content Security Policy" in text], console
        finally:
            browser.close()
