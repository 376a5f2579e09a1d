"""A manager's removal of a learned photo is remembered as a negative whichever way it goes — the
REST API, the Django admin (one photo or "delete selected") as well as the gallery page
(test_nightly) — and the remembered capture is never learned again for that person."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from recognition.learning import learning_nightly
from recognition.models import FaceImage, LearningNegative, LearningRun
from recognition.tests.learning.test_nightly import _sam_visits

pytestmark = pytest.mark.django_db(transaction=True)


def _learned(site, blink_frames, check_in, settings, *, nights: int) -> list[FaceImage]:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in, nights=nights)
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED and run.templates_added >= 1, (run.decision, run.details)
    return list(FaceImage.objects.filter(source=FaceImage.Source.LEARNED).order_by("pk"))


def _never_learned_again(blink_frames, check_in, negatives: list[LearningNegative], nights: int) -> None:
    _sam_visits(blink_frames, check_in, nights=nights, later=3)  # the same views come again
    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    for face in FaceImage.objects.filter(source=FaceImage.Source.LEARNED):
        for negative in negatives:
            assert float(face.vector @ negative.vector) < 0.9, run.details


def test_a_learned_photo_removed_through_the_api_is_remembered(site, blink_frames, check_in, settings) -> None:
    settings.ROLLCALL_LEARN_MAX_TEMPLATES = 1
    face = _learned(site, blink_frames, check_in, settings, nights=3)[0]
    boss = User.objects.create_superuser("boss", "b@example.com", "pw-12345678")
    api = APIClient()
    api.force_authenticate(boss)
    enrolled = FaceImage.objects.exclude(source=FaceImage.Source.LEARNED).filter(employee=site["JOE"]).get()
    assert api.delete(f"/api/v1/faces/{enrolled.pk}").status_code == 204
    assert not LearningNegative.objects.exists()  # an enrolled photo's removal is no negative
    assert api.delete(f"/api/v1/faces/{face.pk}").status_code == 204
    assert not FaceImage.objects.filter(pk=face.pk).exists()
    negative = LearningNegative.objects.get()
    assert (negative.employee_id, negative.created_by, bytes(negative.embedding)) == (
        site["SAM"].pk, boss, bytes(face.embedding))
    _never_learned_again(blink_frames, check_in, [negative], nights=3)


def test_learned_photos_removed_in_the_admin_are_remembered(site, blink_frames, check_in, settings) -> None:
    faces = _learned(site, blink_frames, check_in, settings, nights=4)
    root = User.objects.create_superuser("root", "r@example.com", "pw-12345678")
    admin = Client()
    admin.force_login(root)
    # One photo from its change page's Delete...
    assert admin.post(f"/admin/recognition/faceimage/{faces[0].pk}/delete/", {"post": "yes"}).status_code == 302
    assert not FaceImage.objects.filter(pk=faces[0].pk).exists()
    assert LearningNegative.objects.count() == 1
    # ...and the rest with the list's "Delete selected" action.
    rest = [face.pk for face in faces[1:]]
    if rest:
        response = admin.post("/admin/recognition/faceimage/", {"action": "delete_selected", "_selected_action": rest,
                                                                 "post": "yes"})
        assert response.status_code == 302
    assert not FaceImage.objects.filter(source=FaceImage.Source.LEARNED).exists()
    negatives = list(LearningNegative.objects.order_by("pk"))
    assert len(negatives) == len(faces) and {n.created_by for n in negatives} == {root}
    assert sorted(bytes(n.embedding) for n in negatives) == sorted(bytes(f.embedding) for f in faces)
    assert all(np.isclose(np.linalg.norm(n.vector), 1.0, atol=1e-4) for n in negatives)
    _never_learned_again(blink_frames, check_in, negatives, nights=4)
