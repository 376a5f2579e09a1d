"""The REST API through DRF's HTTP test client, on the real models and real photos."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Department, Device, Employee
from recognition.models import FaceImage

pytestmark = pytest.mark.django_db(transaction=True)


def _files() -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.fixture()
def org() -> dict[str, object]:
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    users = {}
    for username, role, dept in [("admin", "admin", None), ("boss", "manager", sales), ("ana", "employee", sales),
                                 ("olga", "employee", ops)]:
        user = User.objects.create_user(username, password="pw-" + username)
        users[username] = Employee.objects.create(biometric_consent_at=timezone.now(), user=user, code=username.upper(), full_name=username.title(),
                                                  department=dept, role=role)
    return {"sales": sales, "ops": ops, **users}


def client_for(username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.get(username=username))
    return client


def upload(client: APIClient, employee: Employee, path: Path, **extra):
    with open(path, "rb") as handle:
        return client.post("/api/v1/faces", {"employee": employee.pk, "image": handle}, format="multipart", **extra)


def post_image(client: APIClient, url: str, path: Path | None = None, data: bytes | None = None, **fields):
    content = data if data is not None else path.read_bytes()
    image = io.BytesIO(content)
    image.name = path.name if path else "upload.jpg"
    return client.post(url, {"image": image, **fields}, format="multipart")


def test_enrol_one_photo_then_recognise_another_and_reject_a_stranger(org, people) -> None:
    boss = client_for("boss")
    response = upload(boss, org["ana"], people["barack_obama"][0])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["employee_id"] == org["ana"].pk and body["is_primary"] and body["embedder"] == "fused"
    result = post_image(boss, "/api/v1/recognize", people["barack_obama"][2]).json()
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert face["known"] and face["employee_id"] == org["ana"].pk and face["employee"] == "Ana"
    assert face["similarity"] >= face["threshold"] and len(face["box"]) == 4 and len(face["landmarks"]) == 5
    stranger = post_image(boss, "/api/v1/recognize", people["rose_leslie"][0]).json()["faces"][0]
    assert not stranger["known"] and stranger["employee"] is None


def test_several_photos_per_person_are_all_used(org, people) -> None:
    boss = client_for("boss")
    for photo in people["kit_harington"][:2]:
        assert upload(boss, org["ana"], photo).status_code == 201
    listing = boss.get(f"/api/v1/faces?employee={org['ana'].pk}").json()
    assert listing["count"] == 2 and len(listing["results"]) == 2
    result = post_image(boss, "/api/v1/recognize", people["kit_harington"][2], k=3).json()["faces"][0]
    assert result["known"] and result["employee_id"] == org["ana"].pk


def test_verify_answers_same_or_not(org, people) -> None:
    boss = client_for("boss")
    upload(boss, org["ana"], people["joe_biden"][0])
    same = post_image(boss, "/api/v1/verify", people["joe_biden"][1], employee=org["ana"].pk).json()
    assert same["same"] is True and same["score"] >= same["threshold"] and same["distance"] < 0.6
    other = post_image(boss, "/api/v1/verify", people["alex_lacamoire"][0], employee=org["ana"].pk).json()
    assert other["same"] is False and other["score"] < same["score"]
    not_enrolled = post_image(boss, "/api/v1/verify", people["joe_biden"][1], employee=org["boss"].pk)
    assert not_enrolled.status_code == 400 and not_enrolled.json()["code"] == "not_enrolled"


def test_detect_finds_both_faces(org, faces_dir) -> None:
    faces = post_image(client_for("boss"), "/api/v1/detect", faces_dir / "two_faces.jpg").json()["faces"]
    assert len(faces) == 2 and all(f["score"] > 0.9 for f in faces)


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("not_an_image", b"hello, I am text\n", 400, "invalid_image"),
        ("truncated", None, 400, "invalid_image"),
        ("no_face", None, 400, "no_face"),
        ("two_faces", None, 400, "multiple_faces"),
        ("huge_pixels", None, 413, "image_too_large"),
    ],
)
def test_bad_uploads_get_a_clear_error_and_leave_nothing(org, people, faces_dir, name, content, status, code) -> None:
    if name == "truncated":
        content = people["joe_biden"][0].read_bytes()[:3000]
    elif name in ("no_face", "two_faces"):
        content = (faces_dir / f"{name}.jpg").read_bytes()
    elif name == "huge_pixels":
        buffer = io.BytesIO()
        Image.new("L", (8000, 7000)).save(buffer, format="PNG")
        content = buffer.getvalue()
    image = io.BytesIO(content)
    image.name = "photo.jpg"
    response = client_for("boss").post("/api/v1/faces", {"employee": org["ana"].pk, "image": image}, format="multipart")
    assert response.status_code == status, response.content
    assert response.json()["code"] == code and response.json()["detail"]
    assert FaceImage.objects.count() == 0 and _files() == []


def test_upload_over_the_size_limit_is_413(org, people, settings) -> None:
    settings.ROLLCALL_UPLOAD_MAX_BYTES = 20_000
    response = upload(client_for("boss"), org["ana"], people["joe_biden"][1])
    assert response.status_code == 413 and response.json()["code"] == "image_too_large"
    assert _files() == []


def test_a_fault_on_the_worker_is_a_json_500_and_leaves_nothing(org, people, monkeypatch) -> None:
    """A bug or a database refusal inside the task (once: an embedder version too long for its
    column in PostgreSQL) answers in the API's error shape, not with an HTML page."""
    from recognition import services

    def broken(**kwargs):
        raise RuntimeError("value too long for type character varying(120)")

    monkeypatch.setattr(services, "face_enroll", broken)
    response = upload(client_for("boss"), org["ana"], people["joe_biden"][1])
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "server_error" and "character varying" not in response.json()["detail"]
    assert _files() == []


def test_missing_fields_and_wrong_content_type(org) -> None:
    boss = client_for("boss")
    missing = boss.post("/api/v1/faces", {"employee": org["ana"].pk}, format="multipart")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid" and "image" in missing.json()["detail"]
    as_json = boss.post("/api/v1/recognize", {"image": "abc"}, format="json")
    assert as_json.status_code == 415 and as_json.json()["code"] == "unsupported_media_type"


def test_permissions_on_people(org) -> None:
    assert APIClient().get("/api/v1/employees").status_code in (401, 403)
    ana = client_for("ana").get("/api/v1/employees").json()
    assert [e["full_name"] for e in ana["results"]] == ["Ana"]
    boss = client_for("boss").get("/api/v1/employees").json()
    assert sorted(e["full_name"] for e in boss["results"]) == ["Ana", "Boss"]
    assert client_for("admin").get("/api/v1/employees").json()["count"] == 4
    assert client_for("boss").get(f"/api/v1/employees/{org['olga'].pk}").status_code == 404
    assert client_for("ana").post("/api/v1/employees", {"code": "X", "full_name": "X"}).status_code == 403
    made = client_for("boss").post("/api/v1/employees", {"code": "N1", "full_name": "New Hire"})
    assert made.status_code == 201 and made.json()["department"] == "Sales"
    escalate = client_for("boss").post("/api/v1/employees", {"code": "N2", "full_name": "X", "role": "admin"})
    assert escalate.status_code == 403
    assert client_for("boss").post("/api/v1/departments", {"name": "R&D"}).status_code == 403
    assert client_for("admin").post("/api/v1/departments", {"name": "R&D"}).status_code == 201


def test_permissions_on_faces_and_recognition(org, people) -> None:
    admin = client_for("admin")
    assert upload(admin, org["olga"], people["rose_leslie"][0]).status_code == 201
    olga_face = FaceImage.objects.get(employee=org["olga"])
    boss, ana = client_for("boss"), client_for("ana")
    assert upload(boss, org["olga"], people["rose_leslie"][1]).status_code == 404  # another department
    assert upload(ana, org["ana"], people["joe_biden"][0]).status_code == 403  # employees cannot enrol
    assert boss.get(f"/api/v1/faces/{olga_face.pk}").status_code == 404
    assert boss.delete(f"/api/v1/faces/{olga_face.pk}").status_code == 404
    assert client_for("olga").get("/api/v1/faces").json()["count"] == 1
    assert ana.get("/api/v1/faces").json()["count"] == 0
    assert post_image(ana, "/api/v1/recognize", people["rose_leslie"][1]).status_code == 403
    # a manager recognising someone from another department learns nothing about them
    seen_by_boss = post_image(boss, "/api/v1/recognize", people["rose_leslie"][1]).json()["faces"][0]
    assert seen_by_boss["employee"] is None and seen_by_boss["employee_id"] is None and seen_by_boss["top"] == []
    assert seen_by_boss["known"] is False and seen_by_boss["similarity"] is None and seen_by_boss["distance"] is None
    # nor by verifying against them: someone they may not see is not found
    assert post_image(boss, "/api/v1/verify", people["rose_leslie"][1], employee=org["olga"].pk).status_code == 404
    assert post_image(admin, "/api/v1/recognize", people["rose_leslie"][1]).json()["faces"][0]["employee"] == "Olga"


def test_token_auth_and_device_tokens_reach_only_device_endpoints(org) -> None:
    token = Token.objects.create(user=User.objects.get(username="ana"))
    user_client = APIClient()
    user_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert user_client.get("/api/v1/employees").status_code == 200
    assert user_client.post("/api/v1/device/heartbeat").status_code in (401, 403)

    created = client_for("admin").post("/api/v1/devices", {"name": "Door 1", "location": "lobby"}).json()
    device_token = created["token"]
    assert Device.objects.get(pk=created["id"]).token_hash == Device.hash_token(device_token)
    assert "token" not in client_for("admin").get("/api/v1/devices").json()[0]
    assert client_for("boss").post("/api/v1/devices", {"name": "Door 2"}).status_code == 403
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Device {device_token}")
    beat = device.post("/api/v1/device/heartbeat")
    assert beat.status_code == 200 and beat.json()["name"] == "Door 1" and beat.json()["last_seen_at"]
    assert device.get("/api/v1/employees").status_code in (401, 403)
    assert device.get("/api/v1/faces").status_code in (401, 403)
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Device not-a-real-token")
    assert forged.post("/api/v1/device/heartbeat").status_code == 401


def test_update_delete_and_erasure(org, people) -> None:
    boss = client_for("boss")
    first = upload(boss, org["ana"], people["barack_obama"][0]).json()
    second = upload(boss, org["ana"], people["barack_obama"][1]).json()
    assert not second["is_primary"]
    assert boss.patch(f"/api/v1/faces/{second['id']}", {"is_primary": True}, format="json").json()["is_primary"]
    assert not FaceImage.objects.get(pk=first["id"]).is_primary
    assert boss.delete(f"/api/v1/faces/{first['id']}").status_code == 204
    assert len(_files()) == 2
    assert boss.delete(f"/api/v1/employees/{org['ana'].pk}").status_code == 204
    assert FaceImage.objects.count() == 0 and _files() == []
    after = post_image(boss, "/api/v1/recognize", people["barack_obama"][2]).json()["faces"][0]
    assert not after["known"]


def test_schema_documents_the_api(org) -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ["/api/v1/recognize", "/api/v1/verify", "/api/v1/detect", "/api/v1/faces", "/api/v1/employees",
                 "/api/v1/devices", "/api/v1/device/heartbeat"]:
        assert path in schema["paths"], path
    assert "deviceToken" in schema["components"]["securitySchemes"]


def test_remaining_people_and_device_endpoints(org, people) -> None:
    admin, boss, ana = client_for("admin"), client_for("boss"), client_for("ana")
    # Departments: admins list every one, anyone else their own.
    assert sorted(d["name"] for d in admin.get("/api/v1/departments").json()) == ["Ops", "Sales"]
    assert [d["name"] for d in ana.get("/api/v1/departments").json()] == ["Sales"]
    assert [d["name"] for d in boss.get("/api/v1/departments").json()] == ["Sales"]
    # PATCH: a manager renames and deactivates someone in their department, not elsewhere
    upload(boss, org["ana"], people["barack_obama"][0])
    changed = boss.patch(f"/api/v1/employees/{org['ana'].pk}", {"full_name": "Ana B.", "is_active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["full_name"] == "Ana B." and not changed.json()["is_active"]
    gone = post_image(boss, "/api/v1/recognize", people["barack_obama"][2]).json()["faces"][0]
    assert not gone["known"]  # a deactivated employee is no longer recognised
    assert boss.patch(f"/api/v1/employees/{org['olga'].pk}", {"full_name": "X"}, format="json").status_code == 404
    assert boss.patch(f"/api/v1/employees/{org['ana'].pk}", {"role": "admin"}, format="json").status_code == 403
    assert ana.patch(f"/api/v1/employees/{org['ana'].pk}", {"full_name": "Me"}, format="json").status_code == 403
    assert ana.get(f"/api/v1/employees/{org['ana'].pk}").json()["full_name"] == "Ana B."
    # devices: admins list and delete; a deleted device's token stops working
    created = admin.post("/api/v1/devices", {"name": "Gate"}).json()
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Device {created['token']}")
    assert device.post("/api/v1/device/heartbeat").status_code == 200
    assert boss.delete(f"/api/v1/devices/{created['id']}").status_code == 403
    assert admin.delete(f"/api/v1/devices/{created['id']}").status_code == 204
    assert device.post("/api/v1/device/heartbeat").status_code == 401
    assert admin.get("/api/v1/devices").json() == []
