"""The hostile-input suite: every kind of bad file against every upload endpoint (REST, the gallery
page and the device websocket), and every kind of bad parameter against the list and upload
endpoints. Each answer must be a 4xx with the API's JSON error code (or, for a readable image
without a usable face on an endpoint that reports what it sees, a 200), never a 5xx; and an
error leaves the database rows and the media files exactly as they were.

One process, one loaded pipeline: the models load once for the whole module.
"""

from __future__ import annotations

import base64
import io
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, AttendanceRecord
from portal.asgi import application
from portal.models import Department, Employee
from portal.services import device_create
from recognition.models import EnrolmentCode, FaceImage
from recognition.services import enrolment_code_issue, face_enroll
from recognition.tests.hostile.corpus import BadFile, bad_files

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_LIMIT = 600_000
FILES = bad_files(over_limit_bytes=UPLOAD_LIMIT + 1)
_key_counter = itertools.count()


def _key() -> str:
    return f"hostile-{next(_key_counter):06d}-{uuid.uuid4().hex[:8]}"


def _rows() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def _media() -> set[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _upload(bad: BadFile) -> io.BytesIO:
    handle = io.BytesIO(bad.data)
    handle.name = bad.filename
    handle.content_type = bad.content_type  # what the client claims; RollCall must not care
    return handle


@pytest.fixture()
def world(settings, people) -> dict[str, Any]:
    """Two departments, an admin, a manager and an employee with one enrolled photo, two devices
    (one for files, one for bad parameters, so lockouts do not mix) and a valid enrolment code."""
    settings.ROLLCALL_UPLOAD_MAX_BYTES = UPLOAD_LIMIT
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    users = {}
    for username, role, department in [("root", "admin", None), ("boss", "manager", sales), ("ana", "employee", sales),
                                       ("olga", "employee", ops)]:
        user = User.objects.create_user(username, password=f"pw-{username}-hostile")
        users[username] = Employee.objects.create(user=user, code=username.upper(), full_name=username.title(),
                                                  department=department, role=role)
    face_enroll(employee=users["ana"], data=people["rose_leslie"][0].read_bytes())
    _, files_token = device_create(name="files door")
    _, params_token = device_create(name="params door")
    _, code = enrolment_code_issue(employee=users["ana"])
    clients = {}
    for username in ("root", "boss", "ana"):
        clients[username] = APIClient()
        clients[username].force_authenticate(User.objects.get(username=username))
    for name, token in (("door", files_token), ("params_door", params_token)):
        clients[name] = APIClient()
        clients[name].credentials(HTTP_AUTHORIZATION=f"Device {token}")
    page = Client()
    page.force_login(User.objects.get(username="boss"))
    return {**users, "sales": sales, "ops": ops, "code": code, "clients": clients, "page": page,
            "files_token": files_token, "params_token": params_token}


def _post_upload(world: dict[str, Any], endpoint: str, bad: BadFile):
    clients = world["clients"]
    if endpoint == "faces":
        return clients["boss"].post("/api/v1/faces", {"employee": world["ana"].pk, "image": _upload(bad)},
                                    format="multipart")
    if endpoint == "verify":
        return clients["boss"].post("/api/v1/verify", {"employee": world["ana"].pk, "image": _upload(bad)},
                                    format="multipart")
    if endpoint == "recognize":
        return clients["boss"].post("/api/v1/recognize", {"image": _upload(bad)}, format="multipart")
    if endpoint == "detect":
        return clients["boss"].post("/api/v1/detect", {"image": _upload(bad)}, format="multipart")
    if endpoint == "check_in_kiosk":
        return clients["boss"].post("/api/v1/check-ins", {"frames": [_upload(bad)]}, format="multipart")
    if endpoint == "check_in_device":
        return clients["door"].post("/api/v1/check-ins", {"frames": [_upload(bad)], "key": _key()}, format="multipart")
    if endpoint == "device_enrol":
        return clients["door"].post("/api/v1/device/enrol", {"code": world["code"], "photo": _upload(bad),
                                                             "key": _key()}, format="multipart")
    raise AssertionError(endpoint)


# Endpoints that need one usable face refuse every kind; the others report what a readable image shows.
STRICT = {"faces", "verify", "device_enrol"}
UPLOAD_ENDPOINTS = ["faces", "verify", "device_enrol", "recognize", "detect", "check_in_kiosk", "check_in_device"]


def _judge(endpoint: str, bad: BadFile, status: int, body: Any) -> str | None:
    """None when the answer is right for this kind on this endpoint, else what is wrong."""
    if status >= 500:
        return f"server error {status}: {body}"
    code = body.get("code") if isinstance(body, dict) else None
    if 200 <= status < 300:
        if endpoint in STRICT and not (endpoint == "verify" and "face_too_small" in bad.strict):
            return f"accepted ({status}) a file that must be refused"
        if endpoint not in STRICT and not bad.decodes:
            return f"accepted ({status}) an unreadable file"
        return None
    if not 400 <= status < 500:
        return f"status {status}"
    allowed = bad.strict if endpoint in STRICT else (bad.lenient if not bad.decodes else frozenset())
    if code not in allowed:
        return f"{status} with code {code!r}, expected one of {sorted(allowed)}: {body}"
    if not body.get("detail"):
        return f"{status} without a detail"
    return None


@pytest.mark.parametrize("endpoint", UPLOAD_ENDPOINTS)
def test_every_bad_file_kind_on_every_upload_endpoint(world, endpoint: str) -> None:
    assert len({bad.kind for bad in FILES}) >= 40
    problems, refused, accepted = [], 0, 0
    for bad in FILES:
        rows, media = _rows(), _media()
        faces, events, records = FaceImage.objects.count(), AttendanceEvent.objects.count(), AttendanceRecord.objects.count()
        response = _post_upload(world, endpoint, bad)
        try:
            body = response.json()
        except ValueError:
            body = response.content[:200]
            problems.append(f"{bad.kind}: not JSON ({response.status_code}, {response.get('Content-Type')})")
            continue
        if (wrong := _judge(endpoint, bad, response.status_code, body)) is not None:
            problems.append(f"{bad.kind}: {wrong}")
        # Nothing a hostile file does may add a photo or an attendance fact.
        if (FaceImage.objects.count(), AttendanceEvent.objects.count(), AttendanceRecord.objects.count()) != (
                faces, events, records):
            problems.append(f"{bad.kind}: a photo or attendance row was written")
        after_media = _media()
        if any(name.startswith("staging/") for name in after_media):
            problems.append(f"{bad.kind}: a staged upload was left behind")
        if response.status_code >= 400:
            refused += 1
            if _rows() != rows:
                problems.append(f"{bad.kind}: rows changed on an error: "
                                f"{ {k: (v, _rows()[k]) for k, v in rows.items() if _rows()[k] != v} }")
            if after_media != media:
                problems.append(f"{bad.kind}: media changed on an error: {sorted(after_media ^ media)}")
        else:
            accepted += 1
            if not {name for name in after_media - media if not name.startswith("monitor/")} <= set():
                problems.append(f"{bad.kind}: files other than a monitor thumbnail appeared")
    assert not EnrolmentCode.objects.filter(used_at__isnull=False).exists(), "a refused photo used up the code"
    print(f"\nhostile files on {endpoint}: {len(FILES)} kinds, {refused} refused (4xx), {accepted} reported (2xx), "
          f"{len(problems)} problems")
    assert not problems, "\n".join(problems)


def test_every_bad_file_kind_on_the_gallery_page(world) -> None:
    """The manager's gallery upload form: a refused photo is a message on the page, never a 500."""
    problems = []
    url = f"/people/{world['ana'].pk}/faces/"
    for bad in FILES:
        rows, media = _rows(), _media()
        response = world["page"].post(url, {"photo": _upload(bad)}, follow=True)
        if response.status_code != 200 or b"Photo not added" not in response.content:
            problems.append(f"{bad.kind}: {response.status_code} without a refusal message")
        if _rows() != rows or _media() != media:
            problems.append(f"{bad.kind}: rows or files changed")
    assert not problems, "\n".join(problems)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_every_bad_file_kind_on_the_device_websocket_keeps_it_up(world) -> None:
    problems: list[str] = []

    async def scenario() -> None:
        socket = WebsocketCommunicator(application, "/ws/device/", headers=[
            (b"authorization", f"Device {world['files_token']}".encode()), (b"origin", b"http://localhost"),
            (b"host", b"localhost")])
        connected, _ = await socket.connect()
        assert connected
        assert (await socket.receive_json_from(timeout=10))["type"] == "hello"
        for bad in FILES:
            for kind, message in (("check_in", {"type": "check_in", "key": _key(), "frames": [_b64(bad.data)]}),
                                  ("enrol", {"type": "enrol", "key": _key(), "code": world["code"],
                                             "photos": [_b64(bad.data)]})):
                await socket.send_json_to(message)
                reply = await socket.receive_json_from(timeout=120)
                if kind == "enrol" or not bad.decodes:
                    allowed = bad.strict if kind == "enrol" else bad.lenient
                    if reply.get("type") != "error" or reply.get("code") not in allowed \
                            or reply.get("key") != message["key"]:
                        problems.append(f"{bad.kind} {kind}: {reply}")
                elif reply.get("type") != "decision":
                    problems.append(f"{bad.kind} {kind}: expected a decision, got {reply}")
        await socket.send_json_to({"type": "heartbeat"})
        assert (await socket.receive_json_from(timeout=10))["type"] == "heartbeat", "the connection did not stay up"
        await socket.disconnect()

    faces, events = FaceImage.objects.count(), AttendanceEvent.objects.count()
    async_to_sync(scenario)()
    assert (FaceImage.objects.count(), AttendanceEvent.objects.count()) == (faces, events)
    assert not any(name.startswith("staging/") for name in _media())
    print(f"\nhostile files on the device websocket: {len(FILES)} kinds x 2 messages, {len(problems)} problems")
    assert not problems, "\n".join(problems)
