"""Rollback reaches back ROLLCALL_LEARN_ROLLBACK_DEPTH versions with their learned photos intact;
beyond that it refuses (nothing changes) rather than restore a version with photos missing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from recognition.engine import get_pipeline
from recognition.learning import RollbackUnavailable, learning_rollback, model_version_activate
from recognition.models import FaceImage, ModelVersion
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _version(name: str, parent: ModelVersion | None, learned: list[FaceImage]) -> ModelVersion:
    embedder = get_pipeline().embedder
    version = ModelVersion.objects.create(version=name, embedder=embedder.name, embedder_version=embedder.version,
                                          parent=parent)
    version.learned_faces.set(learned)
    model_version_activate(version=version)
    return version


def test_rollback_restores_versions_within_the_depth_exactly_and_refuses_beyond(site, people, settings) -> None:
    settings.ROLLCALL_LEARN_ROLLBACK_DEPTH = 1
    def learned(person: str, photo) -> FaceImage:  # noqa: ANN001
        face = face_enroll(employee=site[person], data=photo.read_bytes())
        FaceImage.objects.filter(pk=face.pk).update(source=FaceImage.Source.LEARNED)
        return face

    photos = [learned("OBA", people["barack_obama"][1])]  # a night's photos exist just before its switch
    v1 = _version("v1", None, [photos[0]])
    photos.append(learned("OBA", people["barack_obama"][2]))
    v2 = _version("v2", v1, [photos[1]])  # photos[1] replaced photos[0]
    assert FaceImage.objects.filter(pk=photos[0].pk).exists()  # v1 is one rollback away from v2
    photos.append(learned("JOE", people["joe_biden"][1]))
    v3 = _version("v3", v2, [photos[1], photos[2]])  # photos[0]: only v1 (two rollbacks back) held it
    assert not FaceImage.objects.filter(pk=photos[0].pk).exists()
    assert set(v2.learned_faces.values_list("pk", flat=True)) == {photos[1].pk}

    assert learning_rollback() == v2  # within the depth: v2's remaining photos are all there
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    joe_page = admin.get(f"/people/{site['JOE'].pk}/faces/").content.decode()
    assert "learned · not in use" in joe_page  # v3's photo: kept for a roll forward, not recognised with
    barack_page = admin.get(f"/people/{site['OBA'].pk}/faces/").content.decode()
    assert ">learned</span>" in barack_page and "not in use" not in barack_page
    with pytest.raises(RollbackUnavailable, match="v1 cannot be restored"):
        learning_rollback()
    assert ModelVersion.objects.get(state="active") == v2  # the refused rollback changed nothing
    with pytest.raises(CommandError, match="cannot be restored"):
        call_command("learning_rollback")
    page = admin.post("/learning/rollback/", follow=True).content.decode()
    assert "cannot be restored exactly" in page and ModelVersion.objects.get(state="active") == v2
    assert ModelVersion.objects.get(pk=v3.pk).state == "retired"
    assert FaceImage.objects.filter(pk=photos[2].pk).exists()  # v3 is one version from the active v2: kept


def test_the_admin_action_rolls_back_only_the_selected_active_version(site) -> None:
    v1 = _version("v1", None, [])
    v2 = _version("v2", v1, [])
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    url = "/admin/recognition/modelversion/"
    wrong = admin.post(url, {"action": "roll_back", "_selected_action": [v1.pk]}, follow=True).content.decode()
    assert "Select the active version" in wrong and ModelVersion.objects.get(state="active") == v2
    admin.post(url, {"action": "roll_back", "_selected_action": [v2.pk]}, follow=True)
    assert ModelVersion.objects.get(state="active") == v1
