"""The nightly learning in a real browser (Debian's Chromium), after a real nightly run (templates
and a fine-tuning run) on real captures through the check-in service: the Learning page draws the
loss curve and the gate's before/after figures, and the gallery map draws every photo, marks the
learned ones and shows a point's thumbnail on hover. At 1280 and 375 px, with no CSP violation,
no console error, no sideways scroll at 375 px and no serious axe-core violation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from recognition.learning import learning_nightly
from recognition.models import FaceImage, LearningRun, ModelVersion
from recognition.tests.learning.conftest import blink_frames, check_in, site  # noqa: F401 (fixtures)
from recognition.tests.learning.test_nightly import _sam_visits

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "375": {"width": 375, "height": 812}}
PASSWORD = "pw-learning-page-123"
SHOTS = Path(os.environ.get("ROLLCALL_TEST_SCREENSHOTS", "/tmp/rollcall-learning-shots"))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def learned_site(site, people, blink_frames, check_in, settings) -> LearningRun:  # noqa: F811
    """One real night: Sam's safe check-ins become templates, a head is trained (a few seconds)
    and gated; Barack and Joe come in once; a stranger comes to the door."""
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_WITHOUT_LIVENESS = True  # still photos: no blink to prove
    settings.ROLLCALL_LEARN_MAX_MINUTES = 0.2
    _sam_visits(blink_frames, check_in)
    for hours, name in enumerate(("barack_obama", "joe_biden")):
        check_in([people[name][1].read_bytes()] * 2, hours_ago=40 + hours)
    for hours, image in enumerate(people["rose_leslie"]):
        check_in([image.read_bytes()] * 2, hours_ago=50 + hours)
    run = learning_nightly(finetune=True)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.templates_added >= 1 and "templates" in run.details and "finetuned" in run.details, run.details
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    return run


def _watch(page) -> list[str]:  # noqa: ANN001
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    return errors


def _no_sideways_scroll(page, width: str, name: str) -> None:  # noqa: ANN001
    if width == "375":
        scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map((e) => e.tagName + '.' + e.className)""") if scroll[0] > scroll[1] else []
        assert scroll[0] <= scroll[1], f"{name} at 375 px scrolls sideways: {scroll} {wide}"


def _axe(page, name: str) -> None:  # noqa: ANN001
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert not bad, (name, bad)


def test_the_learning_page_and_the_gallery_map_after_a_real_night(live_server, learned_site) -> None:
    from playwright.sync_api import expect, sync_playwright

    from conftest import browser_login

    run = learned_site
    before, after = run.details["before"], run.details["templates"]
    trained = ModelVersion.objects.exclude(losses=[]).get()  # the head's version, accepted or refused
    faces = FaceImage.objects.count()
    learned = FaceImage.objects.filter(source=FaceImage.Source.LEARNED).count()
    assert learned == run.templates_added
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for width, viewport in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                page.add_init_script(RECORD_VIOLATIONS)
                errors = _watch(page)
                browser_login(page, live_server.url, "root", PASSWORD, "/learning/")

                # The Learning page: the night's gate figures before -> after and the loss curve.
                night = page.locator("#learning-runs tbody tr").first
                text = night.inner_text()
                assert f"recognised {before['recognised']:.3f} → {after['recognised']:.3f}" in text, text
                assert f"threshold {before['threshold']:.3f} → {after['threshold']:.3f}" in text, text
                assert f"median margin {before['margin_median']:.3f} → {after['margin_median']:.3f}" in text, text
                assert run.decision in text
                curve = page.locator(f"#model-versions tr:has-text('{trained.version}') svg.loss-curve polyline")
                curve.scroll_into_view_if_needed()
                assert curve.is_visible()
                points = curve.get_attribute("points").split()
                assert len(points) == len(trained.losses) >= 2
                box = curve.bounding_box()
                assert box["width"] > 100 and box["height"] > 0  # drawn, not collapsed
                _no_sideways_scroll(page, width, "learning")
                page.screenshot(path=str(SHOTS / f"learning-{width}.png"), full_page=True)

                # The gallery map: every photo drawn, the learned ones marked, a thumbnail on hover.
                page.goto(f"{live_server.url}/gallery/map/")
                page.wait_for_selector("#gallery-map[data-state=ready]", timeout=120_000)
                assert page.locator("#map-svg .point").count() == faces
                marked = page.locator("#map-svg .point[data-source=learned]")
                assert marked.count() == learned
                assert "Learned" in page.inner_text("#map-sources")
                assert page.is_hidden("#map-tip")
                marked.first.scroll_into_view_if_needed()
                marked.first.hover()
                page.wait_for_selector("#map-tip:not([hidden])")
                assert page.is_visible("#map-tip img")
                src = page.get_attribute("#map-tip img", "src")
                assert src.startswith("/faces/") and src.endswith("/crop/")
                expect(page.locator("#map-tip img")).to_have_js_property("complete", True)
                assert page.locator("#map-tip img").evaluate("img => img.naturalWidth") > 0  # really served
                assert page.inner_text("#map-tip span").startswith("Sam Selfie · Learned")
                tip, plot = page.locator("#map-tip").bounding_box(), page.locator(".map-plot").bounding_box()
                assert plot["x"] <= tip["x"] and tip["x"] + tip["width"] <= plot["x"] + plot["width"] + 1
                page.screenshot(path=str(SHOTS / f"gallery-map-hover-{width}.png"), full_page=True)
                page.mouse.move(0, 0)
                page.wait_for_selector("#map-tip", state="hidden")
                _no_sideways_scroll(page, width, "gallery map")
                assert page.evaluate("window.__violations") == [], page.evaluate("window.__violations")
                assert not errors, errors
                context.close()

                # axe-core in the page (this context bypasses the CSP only to inject it).
                checked = browser.new_context(viewport=viewport, bypass_csp=True).new_page()
                browser_login(checked, live_server.url, "root", PASSWORD, "/learning/")
                _axe(checked, f"learning at {width}")
                checked.goto(f"{live_server.url}/gallery/map/")
                checked.wait_for_selector("#gallery-map[data-state=ready]", timeout=120_000)
                _axe(checked, f"gallery map at {width}")
                checked.context.close()
        finally:
            browser.close()
