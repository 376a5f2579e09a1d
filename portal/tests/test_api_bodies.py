"""Bodies the API cannot take are a 4xx in the API's one error shape, never a 500: over the size
limit (413), nested too deeply for the JSON decoder (400), too many fields (400)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from portal.models import Employee
from portal.services import device_create

pytestmark = pytest.mark.django_db


@pytest.fixture()
def admin() -> APIClient:
    user = User.objects.create_user("root")
    Employee.objects.create(user=user, code="ROOT", full_name="Root Admin", role="admin")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_body_over_the_limit_is_a_413(admin: APIClient, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    big = '{"code": "X", "full_name": "' + "a" * 5000 + '"}'
    response = admin.post("/api/v1/employees", big, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large", response.content
    _, token = device_create(name="Door")
    device = APIClient(HTTP_AUTHORIZATION=f"Device {token}")
    response = device.post("/api/v1/device/heartbeat", big, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large", response.content
    assert not Employee.objects.filter(code="X").exists()


def test_json_nested_too_deep_is_a_400_parse_error(admin: APIClient) -> None:
    deep = '{"code": "X", "full_name": "Deep", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = admin.post("/api/v1/employees", deep, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error", response.content
    assert not Employee.objects.filter(code="X").exists()


def test_too_many_fields_is_a_400(admin: APIClient, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"f{i}": "x" for i in range(50)} | {"code": "X", "full_name": "Many"}
    response = admin.post("/api/v1/employees", fields, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "bad_request", response.content
    assert not Employee.objects.filter(code="X").exists()


def test_a_burst_over_its_byte_limit_is_a_413_before_it_is_read(admin: APIClient, settings, people) -> None:
    """Each frame under the upload limit, all together over ROLLCALL_BURST_MAX_BYTES: refused from
    the request's length (REST check-in and face login), nothing recorded."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from attendance.models import RecognitionLog

    photo = people["joe_biden"][0].read_bytes()
    settings.ROLLCALL_BURST_MAX_BYTES = 3 * len(photo)
    frames = [SimpleUploadedFile(f"{i}.jpg", photo, "image/jpeg") for i in range(6)]
    response = admin.post("/api/v1/check-ins", {"frames": frames}, format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "image_too_large", response.content
    assert "MB" in response.json()["detail"] and RecognitionLog.objects.count() == 0
    frames = [SimpleUploadedFile(f"{i}.jpg", photo, "image/jpeg") for i in range(6)]
    login = Client().post("/accounts/face-login/", {"username": "root", "frames": frames})
    assert login.status_code == 413 and login.json()["code"] == "image_too_large", login.content
