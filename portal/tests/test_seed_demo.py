"""The quick start's demo data: idempotent, real enrolments, and a demo door device whose token
file lets the edge client connect at once."""

from __future__ import annotations

import stat
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from portal.models import Device, Employee
from recognition.models import FaceImage

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_twice(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path / "var"
    call_command("seed_demo", stdout=StringIO())
    faces, employees = FaceImage.objects.count(), Employee.objects.count()
    assert employees == 6 and faces >= 5
    token_file = settings.VAR_DIR / "demo-device-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token_file.read_text().strip()}")
    assert client.post("/api/v1/device/heartbeat").json()["name"] == "Demo door"
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert (FaceImage.objects.count(), Employee.objects.count(), Device.objects.count()) == (faces, employees, 1)
    assert "token in" in out.getvalue()
