"""Webcam enrolment answers in place (the new photo's card, or the quality gate's reason), and the
long commands show clean progress bars; on real photos."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from portal.models import Department, Employee
from recognition.models import FaceImage, ReembedJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture()
def boss_client() -> tuple[Client, Employee]:
    sales = Department.objects.create(name="Sales")
    user = User.objects.create_user("boss", password="pw-boss-123")
    Employee.objects.create(user=user, code="M", full_name="Boss", department=sales, role="manager")
    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana Sales", department=sales)
    client = Client()
    client.force_login(user)
    return client, ana


def test_webcam_photo_is_added_in_place_or_refused_with_the_reason(boss_client, people, faces_dir) -> None:
    client, ana = boss_client
    url = f"/people/{ana.pk}/faces/"
    with open(people["rose_leslie"][0], "rb") as photo:
        added = client.post(url, {"photo": photo, "source": "webcam"}, HTTP_ACCEPT="application/json")
    assert added.status_code == 201, added.content
    face = FaceImage.objects.get(employee=ana)
    assert face.source == FaceImage.Source.WEBCAM and face.get_source_display() == "Webcam"
    body = added.json()
    assert body["face_id"] == face.pk and body["count"] == 1 and "used for recognition" in body["detail"]
    assert f"/faces/{face.pk}/crop" in body["html"] and "Webcam" in body["html"] and "csrfmiddlewaretoken" in body["html"]
    with open(faces_dir / "no_face.jpg", "rb") as photo:
        refused = client.post(url, {"photo": photo, "source": "webcam"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 400 and refused.json()["code"] == "no_face"
    assert refused.json()["detail"].startswith("Photo not added: ")
    missing = client.post(url, {"source": "webcam"}, HTTP_ACCEPT="application/json")
    assert missing.status_code == 400 and missing.json()["code"] == "no_photo"
    # a plain form upload still redirects with a message, recorded as an upload
    with open(people["rose_leslie"][1], "rb") as photo:
        assert client.post(url, {"photo": photo}).status_code == 302
    assert FaceImage.objects.filter(employee=ana, source=FaceImage.Source.UPLOAD).count() == 1
    page = client.get(url).content.decode()
    assert "Photo added" in page and 'id="camera-status"' in page and 'role="status"' in page


def test_enroll_folder_bar_is_not_broken_by_per_photo_lines(tmp_path: Path, people, faces_dir) -> None:
    (tmp_path / "kit_harington").mkdir()
    for photo in people["kit_harington"][:2]:
        shutil.copy(photo, tmp_path / "kit_harington" / photo.name)
    shutil.copy(faces_dir / "no_face.jpg", tmp_path / "kit_harington" / "zz_none.jpg")
    out, err = io.StringIO(), io.StringIO()
    call_command("enroll_folder", str(tmp_path), "--consent", stdout=out, stderr=err)
    bar = err.getvalue()
    assert "enrolling" in bar and "3/3" in bar and "rejected=1" in bar and "rejected " not in bar.replace("rejected=", "")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("rejected ") and "zz_none.jpg" in lines[0]  # listed after the bar, not across it
    assert "2 enrolled, 1 rejected" in out.getvalue()


def test_reembed_gallery_shows_a_bar_and_the_admin_shows_progress(people) -> None:
    from recognition.services import face_enroll

    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana")
    for photo in people["rose_leslie"][:2]:
        face_enroll(employee=ana, data=photo.read_bytes())
    FaceImage.objects.update(embedder="old", embedder_version="0")
    out, err = io.StringIO(), io.StringIO()
    call_command("reembed_gallery", stdout=out, stderr=err, interval=0.05)
    assert "re-embedding" in err.getvalue() and "2/2" in err.getvalue()
    assert "2/2 (finished)" in out.getvalue()
    from django.contrib import admin

    from recognition.admin import ReembedJobAdmin

    job = ReembedJob.objects.get()
    assert ReembedJobAdmin(ReembedJob, admin.site).progress(job) == "2/2 (100 %)"


def test_recognise_page_draws_boxes_and_names_on_the_photo(boss_client, people) -> None:
    from recognition.services import face_enroll

    client, ana = boss_client
    face_enroll(employee=ana, data=people["rose_leslie"][0].read_bytes())
    with open(people["rose_leslie"][1], "rb") as photo:
        page = client.post("/recognize/", {"photo": photo}).content.decode()
    assert 'src="data:image/jpeg;base64,' in page and "<svg viewBox=" in page
    assert page.count("<rect ") == 1 and ">1. Ana Sales 0." in page and 'class="face-box known"' in page
