"""The nightly job on real faces: learned templates, the gate, rollback, poisoning, erasure."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from portal.models import Employee
from recognition.learning import learning_nightly, learning_rollback
from recognition.learning_gate import beats, gate_figures
from recognition.models import (
    ErasureRequest,
    FaceImage,
    LearningCandidate,
    LearningNegative,
    LearningRun,
    ModelVersion,
    StrangerSample,
)
from recognition.selectors import build_index, gallery_base_vectors, gallery_index
from recognition.services import erasure_request_carry_out, face_enroll, face_recognize

pytestmark = pytest.mark.django_db(transaction=True)


def _sam_visits(blink_frames, check_in, nights: int = 3, later: float = 0.0) -> None:
    """Sam comes in ``nights`` times (a third of the burst each time), recognised and kept."""
    step = len(blink_frames) // nights
    for night in range(nights):
        outcome = check_in(blink_frames[night * step:(night + 1) * step:3], hours_ago=30 - 8 * night - later)
        assert outcome.outcome in ("checked_in", "checked_out"), outcome


def _answers(images: list[bytes]) -> list[tuple]:
    return [tuple((m.label, m.score) for m in face.top) + (face.known, face.threshold)
            for image in images for face in face_recognize(data=image)]


def test_learned_templates_pass_the_gate_and_rollback_restores_the_answers_exactly(site, people, blink_frames,
                                                                                   check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    probes = [blink_frames[45], people["barack_obama"][1].read_bytes(), people["joe_biden"][1].read_bytes(),
              people["rose_leslie"][1].read_bytes()]
    before = _answers(probes)
    _sam_visits(blink_frames, check_in)
    assert LearningCandidate.objects.filter(employee=site["SAM"]).count() == 3

    run = learning_nightly(finetune=False)
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    assert run.harvest["new"] == 3  # the night's harvest, counted before any capture became a photo
    assert run.decision == "accepted" and run.templates_added >= 1, (run.decision, run.details)
    assert run.details["before"]["heldout"] >= 1 and "templates" in run.details
    version = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)
    learned = FaceImage.objects.filter(source=FaceImage.Source.LEARNED)
    assert learned.count() == run.templates_added and {f.employee_id for f in learned} == {site["SAM"].pk}
    assert set(version.learned_faces.all()) == set(learned)
    assert len(gallery_index()) == FaceImage.objects.count()  # learned photos are in the live gallery
    from recognition.engine import match_threshold

    assert match_threshold() >= version.threshold - 1e-9 and match_threshold() >= 0.914 - 1e-9

    # A second run the same night has nothing new: no change.
    again = learning_nightly(finetune=False)
    assert again.harvest["new"] == 0
    assert again.decision == "no change" and ModelVersion.objects.filter(state="active").get() == version

    # Rollback restores the previous answers exactly (same people, same scores).
    assert learning_rollback() is None
    assert _answers(probes) == before
    assert not ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exists()


def test_a_removed_learned_photo_is_remembered_and_never_learned_again(site, blink_frames, check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_MAX_TEMPLATES = 1
    _sam_visits(blink_frames, check_in)
    assert learning_nightly(finetune=False).templates_added == 1
    face = FaceImage.objects.get(source=FaceImage.Source.LEARNED)
    from django.contrib.auth.models import User
    from django.test import Client

    manager = Client()
    manager.force_login(User.objects.create_superuser("boss", "b@example.com", "pw-12345678"))
    page = manager.get(f"/people/{site['SAM'].pk}/faces/").content.decode()
    assert page.count('class="tag learned"') == 1
    assert manager.post(f"/people/{site['SAM'].pk}/faces/{face.pk}/delete/").status_code == 302  # the gallery's Delete
    assert not FaceImage.objects.filter(pk=face.pk).exists()
    negative = LearningNegative.objects.get()
    assert negative.employee_id == site["SAM"].pk and bytes(negative.embedding) == bytes(face.embedding)
    _sam_visits(blink_frames, check_in, later=3)  # the same views come again
    run = learning_nightly(finetune=False)
    for added in FaceImage.objects.filter(source=FaceImage.Source.LEARNED):
        assert float(added.vector @ negative.vector) < 0.9, run.details


def test_strangers_night_after_night_and_a_look_alike_never_become_templates(site, people, blink_frames, check_in,
                                                                           settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    # A look-alike joins: enrolled with Sam's own face. Sam's captures are no longer safely Sam's.
    twin = Employee.objects.create(code="TWN", full_name="Sam's Twin", biometric_consent_at=site["SAM"].biometric_consent_at)
    face_enroll(employee=twin, data=blink_frames[47])
    for night in range(3):  # a stranger at the door every night, then the nightly job
        for image in people["rose_leslie"]:
            assert check_in([image.read_bytes()] * 2, hours_ago=20 - 6 * night).outcome == "unknown"
        run = learning_nightly(finetune=False)
        assert run.status == LearningRun.Status.FINISHED, run.last_error
        assert run.templates_added == 0, run.details
    assert StrangerSample.objects.count() == 3 * len(people["rose_leslie"])
    assert not FaceImage.objects.filter(source=FaceImage.Source.LEARNED).exists()
    assert not LearningCandidate.objects.exclude(employee=site["SAM"]).exists()


class _DamagedHead:
    """A deliberately damaged projection head: random weights that squeeze the space through a few
    directions (what a collapsed training run produces). A full-rank random map would not do: it
    keeps cosines nearly as they are (Johnson-Lindenstrauss)."""

    def __init__(self, dim: int, rank: int = 8) -> None:
        rng = np.random.default_rng(7)
        self.matrix = (rng.normal(size=(dim, rank)) @ rng.normal(size=(rank, dim))).astype(np.float32)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        out = np.asarray(vectors, dtype=np.float32) @ self.matrix
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_the_gate_refuses_a_damaged_model(site, people, blink_frames, check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    for hours, name in enumerate(("barack_obama", "joe_biden", "alex_lacamoire")):
        check_in([people[name][1].read_bytes()] * 2, hours_ago=40 + hours)
    for hours, image in enumerate(people["rose_leslie"]):
        check_in([image.read_bytes()] * 2, hours_ago=50 + hours)
    vectors, labels, _ = gallery_base_vectors(version=None)
    labels = np.asarray(labels)
    heldout = [(c.employee_id, c.matrix) for c in LearningCandidate.objects.all()]
    strangers = [sample.matrix for sample in StrangerSample.objects.all()]
    figures = {}
    for name, head in (("active", None), ("damaged", _DamagedHead(vectors.shape[1]))):
        index = build_index(vectors, labels, dim=vectors.shape[1], cohort=None, head=head)
        figures[name] = gate_figures(index, heldout=heldout, strangers=strangers, base_vectors=vectors, labels=labels,
                                     rate=0.01, floor=0.914)
    assert figures["active"].recognised == 1.0
    accepted, reason = beats(figures["damaged"], figures["active"], rate=0.01, strict=True)
    assert not accepted and reason, figures


def test_erasure_removes_learning_captures_learned_photos_and_negatives(site, blink_frames, check_in, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    assert learning_nightly(finetune=False).templates_added >= 1
    sam = site["SAM"]
    _sam_visits(blink_frames[1:], check_in, later=3)
    LearningNegative.objects.create(employee=sam, embedding=sam.faces.first().embedding, embedder="x", embedder_version="y")
    learned = list(sam.faces.filter(source=FaceImage.Source.LEARNED))
    assert learned and sam.learning_candidates.exists()
    files = [c.crop.name for c in sam.learning_candidates.all()] + [
        name for f in learned for name in (f.image.name, f.crop.name)]
    assert files and all(default_storage.exists(name) for name in files)
    admin = Employee.objects.get(code="JOE")  # whoever carries it out; only the record of it matters here
    from django.contrib.auth.models import User

    user = User.objects.create_superuser("boss", "b@example.com", "pw-12345678")
    admin.user = user
    erasure_request_carry_out(request=ErasureRequest.objects.create(employee=sam), handled_by=user)
    assert not sam.learning_candidates.exists() and not sam.faces.exists() and not sam.learning_negatives.exists()
    assert not FaceImage.objects.filter(pk__in=[f.pk for f in learned]).exists()
    assert not LearningCandidate.objects.filter(employee_id=sam.pk).exists()
    assert not any(default_storage.exists(name) for name in files)


def test_deleting_an_employee_removes_their_learning_captures_and_learned_photos_with_files(site, blink_frames,
                                                                                            check_in, settings) -> None:
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    settings.ROLLCALL_LIVENESS = "off"
    _sam_visits(blink_frames, check_in)
    assert learning_nightly(finetune=False).templates_added >= 1
    sam = site["SAM"]
    _sam_visits(blink_frames[1:], check_in, later=3)
    learned = list(sam.faces.filter(source=FaceImage.Source.LEARNED))
    files = [c.crop.name for c in sam.learning_candidates.all()] + [
        name for f in learned for name in (f.image.name, f.crop.name)]
    assert learned and sam.learning_candidates.exists() and all(default_storage.exists(name) for name in files)
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("boss", "b@example.com", "pw-12345678"))
    assert api.delete(f"/api/v1/employees/{sam.pk}").status_code == 204
    assert not LearningCandidate.objects.filter(employee_id=sam.pk).exists()
    assert not FaceImage.objects.filter(pk__in=[f.pk for f in learned]).exists()
    assert not LearningNegative.objects.exists()  # a departure is no removal of a wrong photo
    assert not any(default_storage.exists(name) for name in files)


def test_a_look_alike_stranger_the_door_accepts_night_after_night_never_becomes_a_template(site, people, check_in,
                                                                                          settings) -> None:
    """A stranger (Rose, not enrolled) whom the door takes for an employee: the threshold is set
    just under her best score, so each visit is accepted as that employee, a misidentification,
    but never a safe one (under the threshold plus ROLLCALL_LEARN_MARGIN, and not clear of the
    second person by ROLLCALL_LEARN_GAP). Nothing of hers is kept or learned."""
    settings.ROLLCALL_LIVENESS = "off"
    rose = people["rose_leslie"][0].read_bytes()
    settings.ROLLCALL_MATCH_THRESHOLD = 0.99  # first her closest score, measured by the check-in path itself
    closest = check_in([rose] * 3, hours_ago=30)
    assert closest.outcome == "unknown" and closest.similarity is not None, closest
    settings.ROLLCALL_MATCH_THRESHOLD = closest.similarity - settings.ROLLCALL_LEARN_MARGIN / 2
    taken_for = None
    for night in range(3):
        outcome = check_in([rose] * 3, hours_ago=20 - 6 * night)
        assert outcome.outcome in ("checked_in", "checked_out"), outcome
        assert taken_for in (None, outcome.employee_id)  # the same employee each night
        taken_for = outcome.employee_id
        run = learning_nightly(finetune=False)
        assert run.status == LearningRun.Status.FINISHED, run.last_error
        assert run.templates_added == 0, run.details
    assert not LearningCandidate.objects.exists()
    assert not FaceImage.objects.filter(source=FaceImage.Source.LEARNED).exists()
