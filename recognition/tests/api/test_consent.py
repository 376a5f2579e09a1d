"""Consent first: a person without a recorded biometric consent gets no photo by any way in (the
API, the gallery page, an enrolment code for a door) and nothing is stored; once their consent
is recorded the same photo is enrolled."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from portal.models import Department, Employee
from recognition.models import EnrolmentCode, FaceImage

pytestmark = pytest.mark.django_db(transaction=True)


def _files() -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_no_photo_without_consent_by_any_way_in(people) -> None:
    sales = Department.objects.create(name="Sales")
    user = User.objects.create_user("boss", password="pw-boss-consent-1")
    Employee.objects.create(user=user, code="B", full_name="Boss", role="manager", department=sales)
    kit = Employee.objects.create(code="K", full_name="Kit Example", department=sales)
    api = APIClient()
    api.force_authenticate(user)
    photo = people["kit_harington"][0]
    files = _files()
    with open(photo, "rb") as handle:
        refused = api.post("/api/v1/faces", {"employee": kit.pk, "image": handle}, format="multipart")
    assert refused.status_code == 400 and refused.json()["code"] == "no_consent", refused.content
    code = api.post(f"/api/v1/employees/{kit.pk}/enrolment-code")
    assert code.status_code == 400 and code.json()["code"] == "no_consent", code.content
    page = Client()
    page.force_login(user)
    with open(photo, "rb") as handle:
        answer = page.post(f"/people/{kit.pk}/faces/", {"photo": handle}, follow=True).content.decode()
    assert "Photo not added" in answer and "consent" in answer
    answer = page.post(f"/people/{kit.pk}/enrolment-code/", follow=True).content.decode()
    assert "No enrolment code" in answer and "consent" in answer
    assert FaceImage.objects.count() == 0 and EnrolmentCode.objects.count() == 0 and _files() == files

    assert api.patch(f"/api/v1/employees/{kit.pk}", {"biometric_consent_at": "2026-11-30T09:00:00Z"},
                     format="json").status_code == 200
    with open(photo, "rb") as handle:
        added = api.post("/api/v1/faces", {"employee": kit.pk, "image": handle}, format="multipart")
    assert added.status_code == 201, added.content
    assert api.post(f"/api/v1/employees/{kit.pk}/enrolment-code").status_code == 201
