"""Pages through Django's test client: login, the people page, and who may see which face."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.models import Department, Employee
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture()
def org(people: dict[str, list[Path]]) -> dict[str, object]:
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    boss_user = User.objects.create_user("boss", password="pw-boss-123")
    Employee.objects.create(user=boss_user, code="M1", full_name="Sales Boss", department=sales, role=Employee.Role.MANAGER)
    ana_user = User.objects.create_user("ana", password="pw-ana-123")
    ana = Employee.objects.create(user=ana_user, code="E1", full_name="Ana Sales", department=sales)
    olga = Employee.objects.create(code="E2", full_name="Olga Ops", department=ops)
    ana_face = face_enroll(employee=ana, data=people["rose_leslie"][0].read_bytes())
    olga_face = face_enroll(employee=olga, data=people["joe_biden"][0].read_bytes())
    return {"ana_face": ana_face, "olga_face": olga_face}


def _client(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=f"pw-{username}-123")
    return client


def test_anonymous_users_are_sent_to_login(org: dict[str, object]) -> None:
    response = Client().get(reverse("home"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    face = org["ana_face"]
    assert Client().get(reverse("face-file", args=[face.pk, "crop"])).status_code == 302


def test_login_page_renders_and_logs_in(org: dict[str, object]) -> None:
    client = Client()
    assert b"Log in" in client.get(reverse("login")).content
    response = client.post(reverse("login"), {"username": "boss", "password": "pw-boss-123"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_manager_sees_own_department_only(org: dict[str, object]) -> None:
    page = _client("boss").get(reverse("home")).content.decode()
    assert "Ana Sales" in page and "Olga Ops" not in page
    boss = _client("boss")
    ana_crop = boss.get(reverse("face-file", args=[org["ana_face"].pk, "crop"]))
    assert ana_crop.status_code == 200 and b"".join(ana_crop.streaming_content).startswith(b"\x89PNG")
    assert boss.get(reverse("face-file", args=[org["olga_face"].pk, "image"])).status_code == 404


def test_employee_sees_only_own_faces(org: dict[str, object]) -> None:
    ana = _client("ana")
    page = ana.get(reverse("home")).content.decode()
    assert "Ana Sales" in page and "Sales Boss" not in page
    assert ana.get(reverse("face-file", args=[org["ana_face"].pk, "image"])).status_code == 200
    assert ana.get(reverse("face-file", args=[org["olga_face"].pk, "crop"])).status_code == 404
    assert ana.get(reverse("recognize")).status_code == 404


def test_recognise_page_names_the_person_and_explains_bad_uploads(org: dict[str, object], people: dict[str, list[Path]], faces_dir: Path) -> None:
    boss = _client("boss")
    with open(people["rose_leslie"][1], "rb") as photo:
        page = boss.post(reverse("recognize"), {"photo": photo}).content.decode()
    assert "Ana Sales" in page and "Not recognised" not in page
    with open(faces_dir / "README.md", "rb") as not_a_photo:
        response = boss.post(reverse("recognize"), {"photo": not_a_photo})
    assert response.status_code == 200 and "not a readable image" in response.content.decode()


@pytest.mark.django_db
def test_health_and_api_docs_respond() -> None:
    client = Client()
    health = client.get(reverse("health"))
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["checks"]["recognition"]["mode"] == "in_process"
    schema = client.get(reverse("api-schema"))
    assert schema.status_code == 200 and b"RollCall API" in schema.content
    assert client.get(reverse("api-docs")).status_code == 200


@pytest.mark.django_db
def test_the_admin_shows_monitor_history_and_enrolment_codes_read_only() -> None:
    from django.utils import timezone

    from attendance.models import RecognitionLog

    root = User.objects.create_superuser("root-admin", "root@example.com", "pw")
    entry = RecognitionLog.objects.create(at=timezone.now(), state="done", outcome="unknown")
    client = Client()
    client.force_login(root)
    for url in ["/admin/attendance/recognitionlog/", f"/admin/attendance/recognitionlog/{entry.pk}/change/",
                "/admin/recognition/enrolmentcode/"]:
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/attendance/recognitionlog/add/").status_code == 403
