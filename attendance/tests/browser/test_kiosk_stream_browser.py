"""The kiosk's streamed check-in in a real browser against a real server: Daphne serves the portal
(the kiosk socket needs an ASGI server, which pytest-django's live server is not) and Chromium's
fake camera plays the fixture clip. Each frame goes over /ws/kiosk/ as it is taken and no REST
check-in is made; when the socket fails mid-burst, the frames already taken go over REST and the
answer is still shown, stored once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import requests

from attendance.tests.browser.test_kiosk_browser import FIXTURE, _launch, write_y4m
from conftest import browser_login, video_frames
from edge_client.tests.test_end_to_end import Portal

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK_IN_API = "/api/v1/check-ins"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def kiosk_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    base = tmp_path_factory.mktemp("kiosk-stream")
    portal = Portal(base, {"ROLLCALL_SCHEDULER": "off"})
    portal.manage("migrate", "--noinput", "-v0")
    first_frame = base / "sam.jpg"
    cv2.imwrite(str(first_frame), video_frames(FIXTURE)[0])
    portal.manage("shell", "-c", f"""
from django.contrib.auth.models import User
from portal.models import Department, Employee
from recognition.services import face_enroll
team = Department.objects.create(name="Front office")
boss = User.objects.create_user("boss", password="kiosk-test-pw")
Employee.objects.create(user=boss, code="M1", full_name="Mona Manager", role="manager", department=team)
sam = Employee.objects.create(code="S1", full_name="Sam Selfie", department=team)
face_enroll(employee=sam, data=open({str(first_frame)!r}, "rb").read())
""")
    token = portal.manage("create_device", "Warm-up", "--token-only").strip()
    portal.kiosk_token = portal.manage("create_device", "Lobby kiosk", "--token-only").strip()
    portal.start()
    # Load the models before the browser's burst (the first use loads them): a still photo.
    warm = requests.post(portal.url + CHECK_IN_API, headers={"Authorization": f"Device {token}"},
                         files=[("frames", ("f.jpg", first_frame.read_bytes(), "image/jpeg"))] * 3, timeout=180)
    assert warm.json()["outcome"] == "liveness_failed", warm.text
    yield portal
    portal.stop()


def _kiosk_logs(portal: Portal) -> list[tuple[str, str]]:
    return portal.rows("SELECT source, outcome FROM attendance_recognitionlog WHERE source = 'kiosk' ORDER BY id")


def _check_in(portal: Portal, camera: Path, route_socket=None, token: str = "") -> dict:
    """Press the kiosk's button once (a manager's session, or a device token entered on the page);
    what the page showed and what went over the wire."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright, camera)
        try:
            page = browser.new_page()
            if token:
                page.goto(portal.url + "/kiosk/")
                page.fill("#token", token)
                page.click("#save-token")
            else:
                browser_login(page, portal.url, "boss", "kiosk-test-pw", "/kiosk/")
            posts: list[str] = []
            sent: list[dict] = []
            received: list[dict] = []
            page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

            def watch(ws) -> None:
                if ws.url.endswith("/ws/kiosk/"):
                    ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
                    ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

            page.on("websocket", watch)
            bodies: list[bytes | None] = []

            def check_in_body(route) -> None:
                bodies.append(route.request.post_data_buffer)
                route.continue_()

            page.route("**" + CHECK_IN_API, check_in_body)
            if route_socket is not None:
                page.route_web_socket("**/ws/kiosk/", route_socket)
            page.wait_for_selector("body[data-camera=ready]", state="attached", timeout=20_000)
            page.click("#go")
            page.wait_for_selector("#countdown:not([hidden])", timeout=10_000)
            assert "Blink once" in page.text_content("#outcome")
            # No wait for the "checking" spinner: a streamed answer may come within tens of milliseconds
            # of the last frame, too briefly to be seen (the REST kiosk test checks the spinner).
            page.wait_for_selector("#countdown[hidden]", state="attached", timeout=20_000)
            page.wait_for_selector("#outcome:not(.busy)", state="attached", timeout=90_000)
            page.wait_for_selector("#go:enabled", state="attached", timeout=5_000)
            return {"answer": page.text_content("#outcome"), "kind": page.get_attribute("#outcome", "class"),
                    "via": page.get_attribute("body", "data-checked-via"),
                    "check_ins": [url for url in posts if url.endswith(CHECK_IN_API)], "bodies": bodies,
                    "sent": sent, "received": received}
        finally:
            browser.close()


def test_the_kiosk_streams_each_frame_and_shows_the_answer(kiosk_portal: Portal, tmp_path: Path) -> None:
    before = _kiosk_logs(kiosk_portal)
    seen = _check_in(kiosk_portal, write_y4m(video_frames(FIXTURE), tmp_path / "sam.y4m", fps=24))
    assert seen["answer"].startswith("Welcome, Sam — checked in"), seen["answer"]
    assert seen["via"] == "stream" and "ok" in seen["kind"]
    assert seen["check_ins"] == [], "the frames went over the socket, not over REST"
    kinds = [m["type"] for m in seen["sent"]]
    assert kinds[0] == "burst_start" and kinds[-1] == "burst_end" and kinds[1:-1] == ["frame"] * 24, kinds
    assert [m["index"] for m in seen["sent"][1:-1]] == list(range(24))
    assert seen["sent"][-1]["frames"] == 24
    decision = next(m for m in seen["received"] if m["type"] == "decision")
    assert decision["answer"]["outcome"] == "checked_in" and decision["answer"]["message"] == seen["answer"]
    assert _kiosk_logs(kiosk_portal)[len(before):] == [("kiosk", "checked_in")], "stored once"


def test_a_socket_that_fails_mid_burst_falls_back_to_rest_with_every_frame(kiosk_portal: Portal,
                                                                            tmp_path: Path) -> None:
    before = _kiosk_logs(kiosk_portal)
    forwarded: list[str] = []

    def fails_after_five_frames(route) -> None:
        server = route.connect_to_server()

        def from_page(message) -> None:
            forwarded.append(json.loads(message)["type"])
            server.send(message)
            if forwarded.count("frame") == 5:
                route.close(code=1011, reason="the network failed")

        route.on_message(from_page)
        server.on_message(lambda message: route.send(message))

    camera = write_y4m(video_frames(FIXTURE), tmp_path / "sam.y4m", fps=24)
    seen = _check_in(kiosk_portal, camera, fails_after_five_frames)
    assert forwarded[:6] == ["burst_start"] + ["frame"] * 5 and "burst_end" not in forwarded
    assert seen["via"] == "rest" and "ok" in seen["kind"] and "Sam" in seen["answer"], seen["answer"]
    (body,) = seen["bodies"]  # (a routed request keeps its multipart body; a merely observed one does not)
    assert body.count(b'name="frames"') == 24, "every frame taken, including those already streamed"
    new = _kiosk_logs(kiosk_portal)[len(before):]
    assert len(new) == 1 and new[0][1] in ("checked_in", "checked_out"), new


def test_a_refused_socket_falls_back_to_rest(kiosk_portal: Portal, tmp_path: Path) -> None:
    def refused(route) -> None:
        route.close(code=4403, reason="refused")

    before = _kiosk_logs(kiosk_portal)
    seen = _check_in(kiosk_portal, write_y4m(video_frames(FIXTURE), tmp_path / "sam.y4m", fps=24), refused)
    assert seen["via"] == "rest" and "ok" in seen["kind"] and "Sam" in seen["answer"], seen["answer"]
    assert len(seen["check_ins"]) == 1 and not [m for m in seen["sent"] if m["type"] == "frame"]
    assert len(_kiosk_logs(kiosk_portal)[len(before):]) == 1


def test_a_token_kiosk_streams_after_its_auth_message(kiosk_portal: Portal, tmp_path: Path) -> None:
    """No manager session: the page's device token goes in the socket's first message."""
    def device_logs() -> list[tuple]:
        return kiosk_portal.rows("SELECT source FROM attendance_recognitionlog WHERE source = 'device:Lobby kiosk'")

    seen = _check_in(kiosk_portal, write_y4m(video_frames(FIXTURE), tmp_path / "sam.y4m", fps=24),
                     token=kiosk_portal.kiosk_token)
    assert seen["via"] == "stream" and "ok" in seen["kind"] and "Sam" in seen["answer"], seen["answer"]
    assert seen["check_ins"] == [] and seen["sent"][0] == {"type": "auth", "token": kiosk_portal.kiosk_token}
    assert seen["received"][0]["type"] == "authorised"
    assert [m["type"] for m in seen["sent"]].count("frame") == 24
    assert len(device_logs()) == 1, "stored once, as the kiosk's device"
