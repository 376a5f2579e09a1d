"""enroll_folder, re-embedding, the manager gallery pages and the admin, on real photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from portal.models import Department, Employee
from recognition.models import FaceImage, ReembedJob
from recognition.selectors import gallery_index
from recognition.services import face_enroll, gallery_reembed_start

pytestmark = pytest.mark.django_db(transaction=True)


def test_enroll_folder_creates_people_and_reports_rejections(tmp_path: Path, people, faces_dir, capsys) -> None:
    Employee.objects.create(code="rose_leslie", full_name="Rose Existing")
    for name in ("rose_leslie", "kit_harington"):
        (tmp_path / name).mkdir()
        for photo in people[name][:2]:
            shutil.copy(photo, tmp_path / name / photo.name)
    (tmp_path / "ghost").mkdir()
    shutil.copy(faces_dir / "no_face.jpg", tmp_path / "ghost" / "1.jpg")
    shutil.copy(faces_dir / "two_faces.jpg", tmp_path / "ghost" / "2.jpg")
    with pytest.raises(CommandError, match="3 of the people .* no recorded consent .*ghost, kit_harington, rose_leslie"):
        call_command("enroll_folder", str(tmp_path), "--department", "Imported")  # nobody consented yet
    assert FaceImage.objects.count() == 0 and Employee.objects.count() == 1  # nothing created either
    call_command("enroll_folder", str(tmp_path), "--department", "Imported", "--consent")
    out = capsys.readouterr().out
    assert "4 enrolled, 2 rejected, 2 employees created" in out
    assert "rejected (no_face): 1" in out and "rejected (multiple_faces): 1" in out
    assert Employee.objects.get(code="rose_leslie").faces.count() == 2  # matched by code, not duplicated
    kit = Employee.objects.get(code="kit_harington")
    assert kit.full_name == "kit harington" and kit.department.name == "Imported" and kit.faces.count() == 2
    call_command("enroll_folder", str(tmp_path))  # again: duplicates are refused, nothing new
    assert "0 enrolled" in capsys.readouterr().out and FaceImage.objects.count() == 4


def test_reembedding_moves_stale_photos_to_the_active_embedder(people) -> None:
    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana")
    face = face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    good_vector = face.vector.copy()
    FaceImage.objects.filter(pk=face.pk).update(embedder="dlib", embedder_version="old", embedding=b"\0" * 512)
    assert len(gallery_index()) == 0  # a stale vector is never compared
    job = gallery_reembed_start()
    assert job is not None
    job.refresh_from_db()
    assert job.status == ReembedJob.Status.FINISHED and (job.done, job.failed, job.total) == (1, 0, 1)
    face.refresh_from_db()
    assert face.embedder == "fused" and np.allclose(face.vector, good_vector, atol=1e-5)
    assert len(gallery_index()) == 1
    assert gallery_reembed_start() is None  # idempotent: nothing stale any more
    call_command("reembed_gallery")


@pytest.fixture()
def boss_client() -> tuple[Client, Employee]:
    sales = Department.objects.create(name="Sales")
    user = User.objects.create_user("boss", password="pw-boss-123", is_staff=True, is_superuser=True)
    Employee.objects.create(user=user, code="M", full_name="Boss", department=sales, role="manager")
    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana Sales", department=sales)
    client = Client()
    client.force_login(user)
    return client, ana


def test_manager_gallery_page_upload_primary_delete(boss_client, people, faces_dir) -> None:
    client, ana = boss_client
    url = f"/people/{ana.pk}/faces/"
    with open(people["rose_leslie"][0], "rb") as photo:
        page = client.post(url, {"photo": photo}, follow=True).content.decode()
    assert "Photo added" in page
    with open(faces_dir / "two_faces.jpg", "rb") as photo:
        page = client.post(url, {"photo": photo}, follow=True).content.decode()
    assert "Photo not added" in page and "2 faces were found" in page
    with open(people["rose_leslie"][1], "rb") as photo:
        client.post(url, {"photo": photo})
    first, second = FaceImage.objects.filter(employee=ana).order_by("pk")
    assert first.is_primary and not second.is_primary
    client.post(f"/people/{ana.pk}/faces/{second.pk}/primary/")
    second.refresh_from_db()
    assert second.is_primary
    client.post(f"/people/{ana.pk}/faces/{first.pk}/delete/")
    assert list(FaceImage.objects.filter(employee=ana)) == [second]
    page = client.get(url).content.decode()
    assert page.count('alt="enrolled face') == 1 and "Make primary" not in page


def test_admin_enrols_a_photo_and_deletes_an_employee_with_their_faces(boss_client, people) -> None:
    client, ana = boss_client
    with open(people["kit_harington"][0], "rb") as photo:
        response = client.post(f"/admin/portal/employee/{ana.pk}/change/", {
            "code": ana.code, "full_name": ana.full_name, "department": ana.department_id, "role": "employee",
            "is_active": "on", "new_photo": photo,
            "biometric_consent_at_0": "2026-11-30", "biometric_consent_at_1": "09:00:00",
            "faces-TOTAL_FORMS": "0", "faces-INITIAL_FORMS": "0", "faces-MIN_NUM_FORMS": "0", "faces-MAX_NUM_FORMS": "1000",
        }, follow=True)
    assert "Photo enrolled" in response.content.decode()
    assert ana.faces.count() == 1
    page = client.get(f"/admin/portal/employee/{ana.pk}/change/").content.decode()
    assert f"/faces/{ana.faces.get().pk}/crop/" in page
    client.post(f"/admin/portal/employee/{ana.pk}/delete/", {"post": "yes"})
    assert not Employee.objects.filter(pk=ana.pk).exists() and FaceImage.objects.count() == 0


def test_gallery_pages_do_not_load_the_face_models_into_a_web_process(boss_client, people, monkeypatch) -> None:
    """The face gallery page and the gallery map's data only need to know which embedder is active:
    a web process reads that from the shared cache (left by whichever process built the pipeline)
    instead of loading the networks (10 s and about 900 MB on a web process's first gallery view)."""
    from types import SimpleNamespace

    from recognition import engine

    client, ana = boss_client
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    identity = engine.embedder_identity()  # this test process built the pipeline: it is remembered
    engine._remember_identity(*identity)  # (each test starts from an empty cache)

    class NeverBuilt:  # a web process that never built the pipeline; building it now fails the test
        def cache_info(self) -> SimpleNamespace:
            return SimpleNamespace(currsize=0)

        def __call__(self) -> None:
            raise AssertionError("a gallery page loaded the face models")

    monkeypatch.setattr(engine, "get_pipeline", NeverBuilt())
    assert engine.embedder_identity() == identity
    page = client.get(f"/people/{ana.pk}/faces/")
    assert page.status_code == 200 and "Ana Sales" in page.content.decode()
    assert client.get("/gallery/map/data/").status_code in (200, 202)
