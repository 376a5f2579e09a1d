"""Device check-ins over the REST fallback (idempotency keys, late delivery), device enrolment
with a manager's one-time code, and the monitor page's history and thumbnails — on real faces."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import AttendanceEvent, RecognitionLog
from conftest import earlier_today
from portal.models import Department, Employee
from portal.services import device_create, employee_delete
from recognition.models import EnrolmentCode, FaceImage
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _files(path, count: int = 3) -> list[io.BytesIO]:
    files = []
    for _ in range(count):
        handle = io.BytesIO(path.read_bytes())
        handle.name = "frame.jpg"
        files.append(handle)
    return files


@pytest.fixture()
def door() -> tuple[APIClient, object]:
    device, token = device_create(name="Front door")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client, device


@pytest.fixture()
def ana(people) -> Employee:
    team = Department.objects.create(name="Team")
    employee = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana Example", department=team)
    face_enroll(employee=employee, data=people["joe_biden"][0].read_bytes())
    return employee


def test_a_repeated_key_gets_the_first_answer_and_is_stored_once(door, ana, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.ATTENDANCE_REPEAT_WINDOW_SECONDS = 0
    client, device = door
    captured = earlier_today(dt.timedelta(minutes=42))  # queued on the device while the portal was down
    body = {"frames": _files(people["joe_biden"][1]), "key": "evt-000000001", "captured_at": captured.isoformat()}
    first = client.post("/api/v1/check-ins", body, format="multipart")
    assert first.status_code == 200 and first.json()["outcome"] == "checked_in"
    again = client.post("/api/v1/check-ins", {**body, "frames": _files(people["joe_biden"][1])}, format="multipart")
    assert again.json() == first.json()
    assert AttendanceEvent.objects.count() == 1 and RecognitionLog.objects.count() == 1
    event = AttendanceEvent.objects.get()
    assert abs((event.at - captured).total_seconds()) < 1, "a late delivery counts at its capture time"
    assert event.source == "device:Front door"
    # The Idempotency-Key header works the same; a new key is a new visit (a check-out here).
    out = client.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1])}, format="multipart",
                      HTTP_IDEMPOTENCY_KEY="evt-000000002")
    assert out.json()["outcome"] == "checked_out" and AttendanceEvent.objects.count() == 2


def test_bad_device_requests_are_refused_and_leave_no_claim(door, ana, people, settings) -> None:
    client, _ = door
    too_old = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_DEVICE_MAX_DELAY_SECONDS + 60)
    response = client.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1]), "key": "evt-old-00001",
                                                 "captured_at": too_old.isoformat()}, format="multipart")
    assert response.status_code == 400 and "captured_at" in str(response.json()["detail"])
    assert client.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1]), "key": "bad key!"},
                       format="multipart").status_code == 400
    settings.ROLLCALL_UPLOAD_MAX_BYTES = 1000
    big = client.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1]), "key": "evt-big-00001"},
                      format="multipart")
    assert big.status_code == 413
    assert RecognitionLog.objects.count() == 0 and AttendanceEvent.objects.count() == 0
    # A manager's kiosk has no device identity, so no idempotency key.
    boss = User.objects.create_user("boss")
    Employee.objects.create(user=boss, code="M", full_name="Boss", role="manager")
    kiosk = APIClient()
    kiosk.force_authenticate(boss)
    settings.ROLLCALL_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
    assert kiosk.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1]), "key": "evt-kiosk-001"},
                      format="multipart").status_code == 400


def test_enrolment_with_a_managers_one_time_code(door, people) -> None:
    client, _ = door
    team, other = Department.objects.create(name="Team"), Department.objects.create(name="Other")
    boss_user = User.objects.create_user("boss")
    Employee.objects.create(user=boss_user, code="M", full_name="Boss", role="manager", department=team)
    rose = Employee.objects.create(biometric_consent_at=timezone.now(), code="R", full_name="Rose Leslie", department=team)
    stranger = Employee.objects.create(biometric_consent_at=timezone.now(), code="X", full_name="Out Sider", department=other)
    boss = APIClient()
    boss.force_authenticate(boss_user)
    assert boss.post(f"/api/v1/employees/{stranger.pk}/enrolment-code").status_code == 404
    assert client.post(f"/api/v1/employees/{rose.pk}/enrolment-code").status_code in (401, 403)
    issued = boss.post(f"/api/v1/employees/{rose.pk}/enrolment-code")
    assert issued.status_code == 201
    code = issued.json()["code"]
    assert len(code) == 6 and not EnrolmentCode.objects.filter(code_hash__contains=code).exists()

    def enrol(photo, value):
        handle = io.BytesIO(photo.read_bytes())
        handle.name = "photo.jpg"
        return client.post("/api/v1/device/enrol", {"code": value, "photo": handle}, format="multipart")

    refused = enrol(people["barack_obama"][0].parent.parent.parent / "no_face.jpg", code)
    assert refused.status_code == 400 and refused.json()["code"] == "no_face"
    handle = io.BytesIO(people["rose_leslie"][0].read_bytes())
    handle.name = "photo.jpg"
    done = client.post("/api/v1/device/enrol", {"code": code, "photo": handle, "key": "enrol-rose-1"},
                       format="multipart")  # a refused photo left the code usable
    assert done.status_code == 201 and done.json()["employee"] == "Rose Leslie"
    face = FaceImage.objects.get(employee=rose)
    assert face.source == "device"
    # The device did not hear the answer and sends the same request again: the same photo, once.
    handle = io.BytesIO(people["rose_leslie"][0].read_bytes())
    handle.name = "photo.jpg"
    resent = client.post("/api/v1/device/enrol", {"photo": handle, "code": code}, format="multipart",
                         HTTP_IDEMPOTENCY_KEY="enrol-rose-1")
    assert resent.status_code == 201 and resent.json()["face_id"] == face.pk
    used = enrol(people["rose_leslie"][1], code)
    assert used.status_code == 403 and used.json()["code"] == "invalid_code"
    for _ in range(5):  # wrong codes count towards the lockout (a used real code does not: nothing to guess)
        enrol(people["rose_leslie"][1], "000000" if code != "000000" else "111111")
    assert enrol(people["rose_leslie"][1], "000000").status_code == 429
    assert FaceImage.objects.count() == 1


@pytest.mark.parametrize("change", ["promoted", "moved", "issuer_demoted", "deactivated"])
def test_a_code_dies_when_its_person_or_its_issuers_rights_change(door, people, change) -> None:
    """A manager's code for an employee cannot plant a face after the employee became an admin (or
    left the department, or left), or after the manager lost the role: the device is refused and
    the code is void even if things change back."""
    client, _ = door
    team, other = Department.objects.create(name="Team"), Department.objects.create(name="Other")
    boss_user = User.objects.create_user("boss")
    boss_row = Employee.objects.create(user=boss_user, code="M", full_name="Boss", role="manager", department=team)
    rose = Employee.objects.create(biometric_consent_at=timezone.now(), code="R", full_name="Rose Leslie", department=team)
    boss = APIClient()
    boss.force_authenticate(boss_user)
    code = boss.post(f"/api/v1/employees/{rose.pk}/enrolment-code").json()["code"]
    if change == "promoted":
        Employee.objects.filter(pk=rose.pk).update(role="admin")
    elif change == "moved":
        Employee.objects.filter(pk=rose.pk).update(department=other)
    elif change == "issuer_demoted":
        Employee.objects.filter(pk=boss_row.pk).update(role="employee")
    else:
        Employee.objects.filter(pk=rose.pk).update(is_active=False)

    def enrol():
        handle = io.BytesIO(people["kit_harington"][0].read_bytes())  # someone else's face
        handle.name = "photo.jpg"
        return client.post("/api/v1/device/enrol", {"code": code, "photo": handle}, format="multipart")

    refused = enrol()
    assert refused.status_code == 403 and "no longer valid" in refused.json()["detail"]
    Employee.objects.filter(pk__in=[rose.pk, boss_row.pk]).update(role="employee", department=team, is_active=True)
    Employee.objects.filter(pk=boss_row.pk).update(role="manager")
    assert enrol().status_code == 403  # void, not paused
    assert not FaceImage.objects.filter(employee=rose).exists()


def test_monitor_page_history_thumbnails_and_erasure(door, ana, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    client, _ = door
    client.post("/api/v1/check-ins", {"frames": _files(people["joe_biden"][1]), "key": "evt-000000003"}, format="multipart")
    client.post("/api/v1/check-ins", {"frames": _files(people["alex_lacamoire"][0]), "key": "evt-000000004"}, format="multipart")
    mine, unknown = RecognitionLog.objects.get(employee=ana), RecognitionLog.objects.get(employee=None)
    assert unknown.outcome == "unknown" and mine.outcome == "checked_in"

    boss = User.objects.create_user("boss", password="pw")
    Employee.objects.create(user=boss, code="M", full_name="Boss", role="manager", department=ana.department)
    outsider = User.objects.create_user("outsider", password="pw")
    Employee.objects.create(user=outsider, code="O", full_name="Out", role="manager",
                            department=Department.objects.create(name="Elsewhere"))
    worker = User.objects.create_user("worker", password="pw")
    Employee.objects.create(user=worker, code="W", full_name="Worker")

    page = Client()
    page.force_login(boss)
    html = page.get("/monitor/").content.decode()
    assert "Ana Example" in html and "Front door" in html and "/ws/monitor/" in html
    thumb = page.get(f"/monitor/thumbnails/{mine.pk}.jpg")
    assert thumb.status_code == 200 and b"".join(thumb.streaming_content)[:2] == b"\xff\xd8"
    page.force_login(outsider)
    assert "Ana Example" not in page.get("/monitor/").content.decode()
    assert page.get(f"/monitor/thumbnails/{mine.pk}.jpg").status_code == 404
    assert page.get(f"/monitor/thumbnails/{unknown.pk}.jpg").status_code == 200
    page.force_login(worker)
    assert page.get("/monitor/").status_code == 404

    name = mine.thumbnail.name
    assert default_storage.exists(name)
    employee_delete(employee=ana)
    assert not RecognitionLog.objects.filter(pk=mine.pk).exists() and not default_storage.exists(name)


def test_a_manager_issues_a_door_enrolment_code_from_the_gallery_page(people) -> None:
    team = Department.objects.create(name="Team")
    boss = User.objects.create_user("boss", password="pw")
    Employee.objects.create(user=boss, code="M", full_name="Boss", role="manager", department=team)
    rose = Employee.objects.create(biometric_consent_at=timezone.now(), code="R", full_name="Rose Leslie", department=team)
    page = Client()
    page.force_login(boss)
    answer = page.post(f"/people/{rose.pk}/enrolment-code/", follow=True).content.decode()
    assert "Enrolment code for Rose Leslie: " in answer
    assert EnrolmentCode.objects.filter(employee=rose, used_at__isnull=True).count() == 1
    worker = User.objects.create_user("worker", password="pw")
    Employee.objects.create(user=worker, code="W", full_name="Worker", department=team)
    page.force_login(worker)
    assert page.post(f"/people/{rose.pk}/enrolment-code/").status_code == 404
    assert EnrolmentCode.objects.count() == 1


def test_concurrent_wrong_enrolment_codes_get_no_more_tries_than_the_limit(door, people) -> None:
    """Eight wrong codes sent at once from one device against a limit of five: five lookups run
    (403 invalid_code), the other three are refused before looking (429)."""
    import threading

    from django.db import connection

    _, device = door
    token_header = door[0]._credentials["HTTP_AUTHORIZATION"]
    photo = people["rose_leslie"][0].read_bytes()
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def attempt(number: int) -> None:
        try:
            handle = io.BytesIO(photo)
            handle.name = "photo.jpg"
            client = APIClient(HTTP_AUTHORIZATION=token_header)
            barrier.wait()
            response = client.post("/api/v1/device/enrol", {"code": f"99{number:04d}", "photo": handle},
                                   format="multipart")
            answers.append((response.status_code, response.json()["code"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [(403, "invalid_code")] * 5 + [(429, "too_many_attempts")] * 3, answers
    assert FaceImage.objects.count() == 0
