"""Enrolment and recognition through the service layer, on the real models and real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from portal.models import Employee
from recognition.models import FaceImage
from recognition.pipeline.errors import ImageDecodeError, ImageTooLargeError, MultipleFacesError, NoFaceError
from recognition.selectors import gallery_index, gallery_version
from recognition.services import EnrolmentRejected, face_delete, face_enroll, face_recognize

pytestmark = pytest.mark.django_db(transaction=True)


def _files() -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.fixture()
def ana() -> Employee:
    return Employee.objects.create(code="E-1", full_name="Ana Example")


def test_enrol_from_one_photo_then_recognise_from_another(ana: Employee, people: dict[str, list[Path]]) -> None:
    obama = people["barack_obama"]
    face = face_enroll(employee=ana, data=obama[0].read_bytes(), filename="a.jpg")
    assert face.is_primary and face.embedder == "fused" and len(face.vector) == 128 + 512
    assert face.face_size >= 80 and face.sharpness > 0 and 0.9 <= face.detection_score <= 1
    assert len(_files()) == 2  # the original and the aligned crop
    results = face_recognize(data=obama[2].read_bytes())
    assert len(results) == 1
    assert results[0].known and results[0].best.label == ana.pk


def test_a_stranger_is_unknown(ana: Employee, people: dict[str, list[Path]]) -> None:
    face_enroll(employee=ana, data=people["barack_obama"][0].read_bytes())
    results = face_recognize(data=people["rose_leslie"][0].read_bytes())
    assert len(results) == 1 and not results[0].known
    assert results[0].best.label == ana.pk and results[0].best.score < results[0].threshold


def test_every_face_in_a_group_photo_is_recognised_separately(people: dict[str, list[Path]], faces_dir: Path) -> None:
    kit = Employee.objects.create(code="E-2", full_name="Kit")
    rose = Employee.objects.create(code="E-3", full_name="Rose")
    face_enroll(employee=kit, data=people["kit_harington"][1].read_bytes())
    face_enroll(employee=rose, data=people["rose_leslie"][1].read_bytes())
    results = face_recognize(data=(faces_dir / "two_faces.jpg").read_bytes())
    assert sorted(r.best.label for r in results if r.known) == sorted([kit.pk, rose.pk])


@pytest.mark.parametrize(
    ("photo", "error"),
    [("no_face.jpg", NoFaceError), ("two_faces.jpg", MultipleFacesError)],
)
def test_unusable_photos_leave_no_row_and_no_file(ana: Employee, faces_dir: Path, photo: str, error: type) -> None:
    with pytest.raises(error):
        face_enroll(employee=ana, data=(faces_dir / photo).read_bytes())
    assert FaceImage.objects.count() == 0 and _files() == []


def test_corrupt_and_oversized_uploads_are_refused(ana: Employee, people: dict[str, list[Path]], settings) -> None:
    data = people["joe_biden"][0].read_bytes()
    with pytest.raises(ImageDecodeError):
        face_enroll(employee=ana, data=data[:2000])
    settings.ROLLCALL_UPLOAD_MAX_BYTES = 1000
    with pytest.raises(ImageTooLargeError, match="limit"):
        face_enroll(employee=ana, data=data)
    assert FaceImage.objects.count() == 0 and _files() == []


def test_the_same_image_is_never_stored_twice(ana: Employee, people: dict[str, list[Path]]) -> None:
    data = people["joe_biden"][1].read_bytes()
    face_enroll(employee=ana, data=data)
    with pytest.raises(EnrolmentRejected) as info:
        face_enroll(employee=ana, data=data)
    assert info.value.code == "duplicate_image"
    assert FaceImage.objects.count() == 1 and len(_files()) == 2


def test_small_faces_are_rejected_with_a_reason(ana: Employee, people: dict[str, list[Path]], settings) -> None:
    settings.ROLLCALL_ENROL_MIN_FACE = 2000
    with pytest.raises(EnrolmentRejected) as info:
        face_enroll(employee=ana, data=people["joe_biden"][1].read_bytes())
    assert info.value.code == "face_too_small" and "pixels wide" in info.value.detail
    assert _files() == []


def test_a_failed_database_write_removes_the_files(ana: Employee, people: dict[str, list[Path]], monkeypatch) -> None:
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(FaceImage, "save", broken_save)
    with pytest.raises(RuntimeError):
        face_enroll(employee=ana, data=people["joe_biden"][1].read_bytes())
    assert _files() == []


def test_deleting_a_photo_or_an_employee_erases_files_and_index(people: dict[str, list[Path]]) -> None:
    kit = Employee.objects.create(code="E-2", full_name="Kit")
    first = face_enroll(employee=kit, data=people["kit_harington"][0].read_bytes())
    face_enroll(employee=kit, data=people["kit_harington"][1].read_bytes())
    assert len(gallery_index()) == 2 and len(_files()) == 4
    version = gallery_version()
    face_delete(face=first)
    assert gallery_version() > version
    assert len(gallery_index()) == 1 and len(_files()) == 2
    kit.delete()
    assert FaceImage.objects.count() == 0 and _files() == []
    assert len(gallery_index()) == 0
    assert not face_recognize(data=people["kit_harington"][2].read_bytes())[0].known


def test_inactive_employees_are_not_recognised(ana: Employee, people: dict[str, list[Path]]) -> None:
    face_enroll(employee=ana, data=people["barack_obama"][0].read_bytes())
    ana.is_active = False
    ana.save()
    from recognition.services import gallery_changed

    gallery_changed()
    assert not face_recognize(data=people["barack_obama"][1].read_bytes())[0].known


def test_a_blurred_photo_is_rejected_as_too_blurry(ana: Employee, people: dict[str, list[Path]]) -> None:
    import io

    from PIL import Image, ImageFilter

    buffer = io.BytesIO()
    Image.open(people["joe_biden"][1]).filter(ImageFilter.GaussianBlur(6)).save(buffer, format="JPEG")
    with pytest.raises(EnrolmentRejected) as info:
        face_enroll(employee=ana, data=buffer.getvalue())
    assert info.value.code == "too_blurry" and _files() == []


def test_a_small_background_face_does_not_block_enrolment(ana: Employee, people: dict[str, list[Path]]) -> None:
    """A passer-by far smaller than the subject is ignored; the subject is enrolled."""
    import io

    from PIL import Image

    subject = Image.open(people["joe_biden"][1]).convert("RGB")
    passer_by = Image.open(people["rose_leslie"][0]).convert("RGB")
    passer_by.thumbnail((200, 200))
    subject.paste(passer_by, (0, subject.height - passer_by.height))
    buffer = io.BytesIO()
    subject.save(buffer, format="JPEG", quality=92)
    from recognition.engine import get_pipeline
    from recognition.pipeline.image import load_image

    assert len(get_pipeline().detector.detect(load_image(buffer.getvalue()))) == 2
    face = face_enroll(employee=ana, data=buffer.getvalue())
    assert face.box[0] > 150  # the subject's face, not the pasted one in the corner


@pytest.mark.parametrize("spec", ["fused", "fused:mirror", "dlib-onnx:mirror,align=sp5+similarity", "facenet-casia-onnx:mirror"])
def test_every_embedder_version_fits_the_database_columns(spec: str) -> None:
    """SQLite ignores a CharField's length; PostgreSQL refuses the row (a 500 on enrolment)."""
    from recognition.models import ReembedJob
    from recognition.pipeline.embedding import create_from_spec

    embedder = create_from_spec(spec)
    assert len(embedder.name) <= FaceImage._meta.get_field("embedder").max_length
    assert len(embedder.version) <= FaceImage._meta.get_field("embedder_version").max_length
    assert len(embedder.key) <= ReembedJob._meta.get_field("embedder").max_length


def test_recognise_and_verify_score_on_the_same_hub_normalised_scale(people: dict[str, list[Path]], settings) -> None:
    """With hub normalisation active (two neighbours suffice for five people), the 1:N best score
    and the 1:1 verification score of the same photo against the same person are one number, and
    it differs from the plain cosine by that person's offset."""
    import numpy as np

    from recognition.engine import get_pipeline
    from recognition.pipeline.image import load_image
    from recognition.services import face_verify

    settings.ROLLCALL_COHORT_NEIGHBOURS = 2
    staff = {}
    for i, name in enumerate(["barack_obama", "joe_biden", "kit_harington", "rose_leslie", "alex_lacamoire"]):
        staff[name] = Employee.objects.create(code=f"E-{i}", full_name=name.replace("_", " ").title())
        face_enroll(employee=staff[name], data=people[name][0].read_bytes())
    index = gallery_index()
    assert index._offset and abs(float(index.offsets.mean())) < 1e-6
    probe = people["joe_biden"][1].read_bytes()
    found = face_recognize(data=probe)[0]
    verdict = face_verify(employee=staff["joe_biden"], data=probe)
    assert found.known and found.best.label == staff["joe_biden"].pk
    assert verdict.same and verdict.score == pytest.approx(found.best.score, abs=1e-5)
    stored = np.asarray(FaceImage.objects.get(employee=staff["joe_biden"]).vector, dtype=np.float32)
    row = int(np.flatnonzero(index.labels == staff["joe_biden"].pk)[0])
    vector = get_pipeline().embed_single(load_image(probe)).vector
    assert index.offsets[row] != 0
    assert verdict.score == pytest.approx(float(stored @ vector) - float(index.offsets[row]), abs=1e-5)
