"""The gallery map in a real browser (Debian's Chromium): the plot is drawn from the JSON endpoint,
hovering a point shows that photo's thumbnail, and nothing breaks the Content-Security-Policy."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User

from portal.models import Department, Employee
from recognition.services import face_enroll

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_the_gallery_map_is_drawn_and_hovering_a_point_shows_its_thumbnail(live_server, people) -> None:
    from playwright.sync_api import sync_playwright

    from conftest import browser_login

    team = Department.objects.create(name="Team")
    user = User.objects.create_user("boss", password="pw-boss-map-123")
    Employee.objects.create(user=user, code="B", full_name="Boss", role="manager", department=team)
    faces = 0
    for name in ("barack_obama", "kit_harington", "rose_leslie"):
        employee = Employee.objects.create(code=name, full_name=name.replace("_", " ").title(), department=team)
        for photo in people[name][:2]:
            face_enroll(employee=employee, data=photo.read_bytes(), filename=photo.name)
            faces += 1
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.add_init_script(RECORD_VIOLATIONS)
            browser_login(page, live_server.url, "boss", "pw-boss-map-123", "/gallery/map/")
            page.wait_for_selector("#gallery-map[data-state=ready]", timeout=120_000)
            points = page.locator("#map-svg .point")
            assert points.count() == faces
            assert page.get_attribute("#map-svg", "data-layout") == "tsne"
            assert page.locator("#map-people li").count() == 3
            assert page.is_hidden("#map-tip")
            assert page.is_hidden(".map-version")  # one model version: no before/after switch
            points.nth(0).hover()
            page.wait_for_selector("#map-tip:not([hidden])")
            src = page.get_attribute("#map-tip img", "src")
            assert src.startswith("/faces/") and src.endswith("/crop/")
            page.wait_for_function("document.querySelector('#map-tip img').naturalWidth > 0")  # really served
            assert page.inner_text("#map-tip span") in {f"{n} · Upload" for n in ("Barack Obama", "Kit Harington", "Rose Leslie")}
            page.mouse.move(0, 0)
            page.wait_for_selector("#map-tip", state="hidden")
            page.click("button[data-layout=pca]")
            assert page.get_attribute("#map-svg", "data-layout") == "pca"
            assert page.locator("#map-svg .point").count() == faces
            assert page.locator("nav a[href='/gallery/map/']").count() == 1
            assert page.evaluate("window.__violations") == [], page.evaluate("window.__violations")
        finally:
            browser.close()
