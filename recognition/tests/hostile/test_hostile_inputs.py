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
from django.utils import timezone
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
        users[username] = Employee.objects.create(biometric_consent_at=timezone.now(), user=user, code=username.upper(), full_name=username.title(),
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


# --- Bad parameters ---------------------------------------------------------------------------

BAD_IDS = {
    "non_numeric": "abc", "float": "1.5", "negative": "-1", "zero": "0", "int64_overflow": str(2**63),
    "huge_number": "9" * 40, "exponent": "1e3", "hex": "0x10", "fullwidth_digits": "\uff11\uff12",
    "superscript_digit": "\u00b2", "nan": "NaN", "padded": " 1 ", "sql_injection": "1 OR 1=1",
    "html_injection": "<script>alert(1)</script>", "nul_byte": "1\x00", "overlong": "9" * 5000, "json_array": "[1]",
    "emoji": "\U0001f600",
}
BAD_DATES = {"impossible_date": "2024-02-30", "wrong_date_format": "01/02/2024", "year_zero": "0000-01-01",
             "five_digit_year": "10000-01-01", "sql_in_date": "2024-01-01' OR '1'='1"}
BAD_MONTHS = {"month_13": "2024-13", "month_year_zero": "0000-05", "month_one_digit": "2024-1", "month_words": "May"}
ID_QUERIES = [("/api/v1/faces", "employee", "boss"), ("/api/v1/attendance/records", "employee", "boss"),
              ("/api/v1/attendance/records", "department", "root"), ("/api/v1/attendance/month", "department", "boss"),
              ("/api/v1/employees", "page", "root"), ("/api/v1/faces", "page", "root"),
              ("/api/v1/attendance/records", "page", "ana")]


def _cases(world: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], tuple[int, str | None]]]:
    """(kind, description, request, (expected status, expected JSON code or None for a page))."""
    cases: list[tuple[str, str, dict[str, Any], tuple[int, str | None]]] = []
    for kind, value in BAD_IDS.items():
        for url, name, who in ID_QUERIES:
            cases.append((kind, f"{url}?{name}", {"who": who, "method": "get", "url": url, "data": {name: value}},
                          (400, "invalid")))
        for url in ("/reports/today/", "/monitor/"):
            name = "department" if "reports" in url else "device"
            cases.append((kind, f"page {url}?{name}", {"who": "page", "method": "get", "url": url, "data": {name: value}},
                          (400, None)))
        for url, field in (("/api/v1/faces", "employee"), ("/api/v1/verify", "employee")):
            cases.append((kind, f"{url} body {field}", {"who": "boss", "method": "post", "url": url, "format": "multipart",
                                                        "data": {field: value, "image": "FACE"}}, (400, "invalid")))
    for kind, value in BAD_DATES.items():
        for name in ("from", "to"):
            cases.append((kind, f"records?{name}", {"who": "boss", "method": "get", "url": "/api/v1/attendance/records",
                                                    "data": {name: value}}, (400, "invalid")))
        cases.append((kind, "page export?from", {"who": "page", "method": "get", "url": "/reports/export.csv",
                                                 "data": {"from": value}}, (400, None)))
    for kind, value in BAD_MONTHS.items():
        cases.append((kind, "month?month", {"who": "boss", "method": "get", "url": "/api/v1/attendance/month",
                                            "data": {"month": value}}, (400, "invalid")))
    missing = {"department": "999999", "employee": "999999"}
    cases += [
        ("nonexistent_department", "records?department", {"who": "root", "method": "get", "url": "/api/v1/attendance/records",
                                                          "data": {"department": missing["department"]}}, (400, "invalid")),
        ("nonexistent_department", "month?department", {"who": "root", "method": "get", "url": "/api/v1/attendance/month",
                                                        "data": {"department": missing["department"]}}, (400, "invalid")),
        ("nonexistent_department", "employees POST department_id", {
            "who": "root", "method": "post", "url": "/api/v1/employees", "format": "json",
            "data": {"code": "NEW", "full_name": "New", "department_id": 999999}}, (400, "invalid")),
        ("nonexistent_employee", "faces POST employee", {"who": "boss", "method": "post", "url": "/api/v1/faces",
                                                         "format": "multipart",
                                                         "data": {"employee": "999999", "image": "FACE"}}, (404, "not_found")),
        ("page_past_the_end", "employees?page=5", {"who": "root", "method": "get", "url": "/api/v1/employees",
                                                   "data": {"page": "5"}}, (404, "not_found")),
        ("unknown_fields_only", "faces POST", {"who": "boss", "method": "post", "url": "/api/v1/faces", "format": "multipart",
                                               "data": {"is_superuser": "true", "path": "/etc/passwd"}}, (400, "invalid")),
        ("missing_fields", "verify POST", {"who": "boss", "method": "post", "url": "/api/v1/verify", "format": "multipart",
                                           "data": {"image": "FACE"}}, (400, "invalid")),
        ("missing_fields", "employees POST", {"who": "root", "method": "post", "url": "/api/v1/employees",
                                              "format": "json", "data": {}}, (400, "invalid")),
        ("wrong_json_types", "employees POST", {"who": "root", "method": "post", "url": "/api/v1/employees", "format": "json",
                                                "data": {"code": ["A"], "full_name": {"x": 1}, "is_active": "maybe",
                                                         "department_id": "sales"}}, (400, "invalid")),
        ("wrong_json_types", "faces PATCH is_primary", {"who": "boss", "method": "patch", "url": "FACE_URL",
                                                        "format": "json", "data": {"is_primary": [1]}}, (400, "invalid")),
        ("null_body", "employees POST null", {"who": "root", "method": "post", "url": "/api/v1/employees",
                                              "raw": b"null", "content_type": "application/json"}, (400, "invalid")),
        ("malformed_json", "employees POST {", {"who": "root", "method": "post", "url": "/api/v1/employees",
                                                "raw": b'{"code": ', "content_type": "application/json"}, (400, "parse_error")),
        ("multipart_without_boundary", "faces POST", {"who": "boss", "method": "post", "url": "/api/v1/faces",
                                                      "raw": b"--x\r\n", "content_type": "multipart/form-data"},
         (400, "parse_error")),
        ("wrong_body_media_type", "detect POST json", {"who": "boss", "method": "post", "url": "/api/v1/detect",
                                                       "format": "json", "data": {"image": "x"}}, (415, "unsupported_media_type")),
        ("overlong_string", "departments POST name", {"who": "root", "method": "post", "url": "/api/v1/departments",
                                                      "format": "json", "data": {"name": "x" * 1000}}, (400, "invalid")),
        ("nul_in_string", "departments POST name", {"who": "root", "method": "post", "url": "/api/v1/departments",
                                                    "format": "json", "data": {"name": "a\x00b"}}, (400, "invalid")),
        ("bad_role", "employees POST role", {"who": "root", "method": "post", "url": "/api/v1/employees", "format": "json",
                                             "data": {"code": "R", "full_name": "R", "role": "superuser"}}, (400, "invalid")),
        ("bad_datetime", "employees POST consent", {"who": "root", "method": "post", "url": "/api/v1/employees",
                                                    "format": "json", "data": {"code": "D", "full_name": "D",
                                                                               "biometric_consent_at": "yesterday"}},
         (400, "invalid")),
    ]
    for value in ("0", "21", "abc", "1.5"):
        cases.append(("k_out_of_range", f"recognize k={value}", {"who": "boss", "method": "post", "url": "/api/v1/recognize",
                                                                 "format": "multipart", "data": {"image": "FACE", "k": value}},
                      (400, "invalid")))
    for value in ("0", "-5", "nan", "inf", "1e309", "fast"):
        cases.append(("bad_fps", f"check-in fps={value}", {"who": "boss", "method": "post", "url": "/api/v1/check-ins",
                                                           "format": "multipart", "data": {"frames": "FACE", "fps": value}},
                      (400, "invalid")))
    for value in ("short", "has spaces in it", "k" * 65, "../../../etc", "key;DROP TABLE"):
        cases.append(("bad_idempotency_key", f"device check-in key={value[:12]}", {
            "who": "params_door", "method": "post", "url": "/api/v1/check-ins", "format": "multipart",
            "data": {"frames": "FACE", "key": value}}, (400, "invalid")))
    cases.append(("idempotency_key_from_a_person", "kiosk check-in key", {
        "who": "boss", "method": "post", "url": "/api/v1/check-ins", "format": "multipart",
        "data": {"frames": "FACE", "key": "a-valid-looking-key"}}, (400, "invalid")))
    # Unreadable times are field errors; readable ones older than a device may deliver are refused
    # for good with their own code (the edge client dead-letters them instead of retrying); a time
    # without a zone is refused as over the websocket (captured_at_invalid), not read as server time.
    for value, code in (("yesterday", "invalid"), ("2024-13-01T09:00:00Z", "invalid"),
                        ("2024-01-01T09:00:00", "captured_at_invalid"), ("2024-01-01T09:00:00Z", "captured_at_too_old"),
                        ("0001-01-01T00:00:00Z", "captured_at_too_old")):
        cases.append(("bad_captured_at", f"device check-in captured_at={value}", {
            "who": "params_door", "method": "post", "url": "/api/v1/check-ins", "format": "multipart",
            "data": {"frames": "FACE", "key": _key(), "captured_at": value}}, (400, code)))
    cases.append(("too_many_frames", "check-in 49 frames", {"who": "boss", "method": "post", "url": "/api/v1/check-ins",
                                                            "format": "multipart", "data": {"frames": ["TINY"] * 49}},
                  (400, "invalid")))
    for value in ("", "x" * 21):
        cases.append(("bad_enrolment_code", f"device enrol code={value[:5]!r}", {
            "who": "params_door", "method": "post", "url": "/api/v1/device/enrol", "format": "multipart",
            "data": {"code": value, "photo": "FACE"}}, (400, "invalid")))
    cases.append(("wrong_enrolment_code", "device enrol code=000000", {
        "who": "params_door", "method": "post", "url": "/api/v1/device/enrol", "format": "multipart",
        "data": {"code": "000000" if world["code"] != "000000" else "000001", "photo": "FACE"}}, (403, "invalid_code")))
    for url in ("/api/v1/employees/" + str(2**63), "/api/v1/faces/0", "/api/v1/employees/-1", "/api/v1/employees/abc",
                "/api/v1/nope", "/api/v1/employees/", "/api/v2/employees"):
        cases.append(("bad_path", f"GET {url[:40]}", {"who": "root", "method": "get", "url": url}, (404, "not_found")))
    cases.append(("missing_object", "GET /api/v1/employees/999999", {"who": "root", "method": "get",
                                                                     "url": "/api/v1/employees/999999"}, (404, "not_found")))
    cases.append(("wrong_method", "PUT /api/v1/faces", {"who": "boss", "method": "put", "url": "/api/v1/faces",
                                                       "format": "json", "data": {}}, (405, "method_not_allowed")))
    cases.append(("wrong_method", "DELETE /api/v1/recognize", {"who": "boss", "method": "delete",
                                                              "url": "/api/v1/recognize"}, (405, "method_not_allowed")))
    return cases


def _send(world: dict[str, Any], request: dict[str, Any], face: bytes, tiny: bytes):
    client = world["page"] if request["who"] == "page" else world["clients"][request["who"]]
    url = request["url"].replace("FACE_URL", f"/api/v1/faces/{world['face_id']}")
    method = getattr(client, request["method"])
    if "raw" in request:
        return method(url, data=request["raw"], content_type=request["content_type"])
    data = {}
    for name, value in request.get("data", {}).items():
        if value in ("FACE", "TINY") or (isinstance(value, list) and value and value[0] == "TINY"):
            values = value if isinstance(value, list) else [value]
            files = [io.BytesIO(face if v == "FACE" else tiny) for v in values]
            for handle in files:
                handle.name = "photo.jpg"
            data[name] = files if isinstance(value, list) or name == "frames" else files[0]
        else:
            data[name] = value
    if request["method"] == "get":
        return method(url, data)
    if "format" in request and request["who"] != "page":
        return method(url, data, format=request["format"])
    return method(url, data)


def test_every_bad_parameter_kind_gets_a_4xx_with_a_field_error(world, people) -> None:
    world["face_id"] = FaceImage.objects.get(employee=world["ana"]).pk
    face = people["rose_leslie"][1].read_bytes()
    tiny = (Path(__file__).resolve().parents[2] / "fixtures" / "faces" / "no_face.jpg").read_bytes()
    cases = _cases(world)
    problems = []
    for kind, description, request, (status, code) in cases:
        rows, media = _rows(), _media()
        response = _send(world, request, face, tiny)
        label = f"{kind} ({description})"
        if response.status_code != status:
            problems.append(f"{label}: {response.status_code} (expected {status}): {response.content[:300]!r}")
            continue
        if code is not None:
            if not response.get("Content-Type", "").startswith("application/json"):
                problems.append(f"{label}: not JSON: {response.get('Content-Type')}")
                continue
            body = response.json()
            if body.get("code") != code or not body.get("detail"):
                problems.append(f"{label}: body {body}")
            if code == "invalid" and not isinstance(body["detail"], dict):
                problems.append(f"{label}: no field error: {body}")
        if _rows() != rows or _media() != media:
            problems.append(f"{label}: rows or files changed")
    kinds = {kind for kind, *_ in cases}
    print(f"\nhostile parameters: {len(kinds)} kinds in {len(cases)} requests, {len(problems)} problems")
    assert len(kinds) >= 30
    assert not problems, "\n".join(problems)


WS_BAD_MESSAGES = {
    "not_an_object": [1, 2, 3],
    "unknown_type": {"type": "reboot"},
    "no_type": {"frames": []},
    "check_in_without_key": {"type": "check_in", "frames": ["AAAA"]},
    "check_in_bad_key": {"type": "check_in", "key": "bad key!", "frames": ["AAAA"]},
    "check_in_frames_not_a_list": {"type": "check_in", "key": "ws-key-00000001", "frames": "AAAA"},
    "check_in_frames_not_base64": {"type": "check_in", "key": "ws-key-00000002", "frames": ["%%%not base64%%%"]},
    "check_in_too_many_frames": {"type": "check_in", "key": "ws-key-00000003", "frames": ["AAAA"] * 49},
    "check_in_bad_fps": {"type": "check_in", "key": "ws-key-00000004", "frames": ["AAAA"], "fps": "fast"},
    "check_in_nan_fps": {"type": "check_in", "key": "ws-key-00000005", "frames": ["AAAA"], "fps": 1e309},
    "check_in_bad_captured_at": {"type": "check_in", "key": "ws-key-00000006", "frames": ["AAAA"], "captured_at": "soon"},
    "check_in_naive_captured_at": {"type": "check_in", "key": "ws-key-00000007", "frames": ["AAAA"],
                                   "captured_at": "2024-01-01T09:00:00"},
    "frame_without_burst": {"type": "frame", "key": "ws-key-00000008", "index": 0, "jpeg": "AAAA"},
    "burst_end_without_burst": {"type": "burst_end", "key": "ws-key-00000009", "frames": 1},
    "burst_start_bad_key": {"type": "burst_start", "key": "bad key!"},
    "burst_start_bad_fps": {"type": "burst_start", "key": "ws-key-00000010", "fps": "fast"},
    "burst_start_naive_captured_at": {"type": "burst_start", "key": "ws-key-00000011",
                                      "captured_at": "2024-01-01T09:00:00"},
    "enrol_without_code": {"type": "enrol", "photos": ["AAAA"]},
    "enrol_code_wrong_type": {"type": "enrol", "code": 123456, "photos": ["AAAA"]},
    "enrol_two_photos": {"type": "enrol", "code": "123456", "photos": ["AAAA", "AAAA"]},
    "preview_too_large": {"type": "preview", "image": "A" * (400 * 1024)},
    "preview_not_a_string": {"type": "preview", "image": {"x": 1}},
}


def test_bad_device_websocket_messages_get_an_error_reply_and_the_connection_stays(world) -> None:
    replies: dict[str, dict] = {}

    async def scenario() -> None:
        socket = WebsocketCommunicator(application, "/ws/device/", headers=[
            (b"authorization", f"Device {world['params_token']}".encode()), (b"origin", b"http://localhost"),
            (b"host", b"localhost")])
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=10)
        for kind, message in WS_BAD_MESSAGES.items():
            await socket.send_json_to(message)
            replies[kind] = await socket.receive_json_from(timeout=60)
        await socket.send_json_to({"type": "heartbeat"})
        assert (await socket.receive_json_from(timeout=10))["type"] == "heartbeat"
        await socket.disconnect()

    rows, media = _rows(), _media()
    async_to_sync(scenario)()
    wrong = {kind: reply for kind, reply in replies.items() if reply.get("type") != "error" or not reply.get("code")}
    assert not wrong, wrong
    changed = {k for k, v in _rows().items() if rows[k] != v} - {"portal.Device"}
    assert not changed and _media() == media
