"""The gallery map on a real gallery: real photos enrolled through the default pipeline, one of
them under the wrong person; the map is built by its task through the dispatch seam and cached
per audience, gallery version and model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.models import Department, Employee
from recognition.gallery_map import (
    gallery_map_cached,
    gallery_map_key,
    overlapping_people,
    wrong_person_suspects,
)
from recognition.models import FaceImage
from recognition.services import face_delete, face_enroll

pytestmark = pytest.mark.django_db(transaction=True)  # the build task runs on commit, as in production


@pytest.fixture()
def site(people: dict[str, list[Path]]) -> dict[str, object]:
    """Department A: four people with their own photos, plus Barack Obama's third photo enrolled
    (by mistake) under Joe Biden; department B: Rose Leslie. A manager of A and an admin."""
    a, b = Department.objects.create(name="A"), Department.objects.create(name="B")
    employees = {}
    for name in ("barack_obama", "joe_biden", "kit_harington", "alex_lacamoire", "rose_leslie"):
        employees[name] = Employee.objects.create(code=name, full_name=name.replace("_", " ").title(),
                                                  department=b if name == "rose_leslie" else a)
        for photo in people[name][:2]:
            face_enroll(employee=employees[name], data=photo.read_bytes(), filename=photo.name)
    misfiled = face_enroll(employee=employees["joe_biden"], data=people["barack_obama"][2].read_bytes(),
                           source=FaceImage.Source.CHECK_IN)
    manager = User.objects.create_user("boss-a")
    Employee.objects.create(user=manager, code="BA", full_name="Boss A", role="manager", department=a)
    admin = User.objects.create_user("root", is_superuser=True, is_staff=True)
    return {"employees": employees, "misfiled": misfiled, "manager": manager, "admin": admin}


def _data(user: User, **params: str) -> tuple[int, dict]:
    client = Client()
    client.force_login(user)
    response = client.get("/gallery/map/data/", params)
    return response.status_code, response.json()


def test_the_map_flags_the_misfiled_photo_and_shows_only_visible_people(site: dict) -> None:
    employees = site["employees"]
    code, data = _data(site["manager"])
    assert code == 200 and data["status"] == "ready"
    shown = {p["person"] for p in data["points"]}
    assert employees["rose_leslie"].pk not in shown  # department B
    assert shown == {employees[n].pk for n in ("barack_obama", "joe_biden", "kit_harington", "alex_lacamoire")}
    assert len(data["points"]) == 9
    for point in data["points"]:
        assert all(0.0 <= c <= 1.0 for c in point["pca"] + point["tsne"])
        assert point["crop"] == f"/faces/{point['face']}/crop/"
    [suspect] = data["suspects"]
    assert suspect["face"] == site["misfiled"].pk
    assert suspect["person"] == employees["joe_biden"].pk and suspect["closer_to"] == employees["barack_obama"].pk
    flagged = [p for p in data["points"] if p["suspect"]]
    assert [p["face"] for p in flagged] == [site["misfiled"].pk]
    assert flagged[0]["source"] == "check_in" and flagged[0]["source_label"] == "Check-in"
    # Obama's photo under Biden's name makes the two look alike; nobody else does.
    assert [{p["a"], p["b"]} for p in data["lookalikes"]] == [{employees["barack_obama"].pk, employees["joe_biden"].pk}]
    assert {p["name"] for p in data["people"]} == {"Barack Obama", "Joe Biden", "Kit Harington", "Alex Lacamoire"}


def test_the_map_is_cached_per_gallery_version_and_rebuilt_after_a_change(site: dict) -> None:
    employees = site["employees"]
    _, first = _data(site["manager"])
    ids = sorted(Employee.objects.filter(department__name="A").values_list("pk", flat=True))
    key = gallery_map_key(employee_ids=ids, embedder=FaceImage.objects.first().embedder,
                          embedder_version=FaceImage.objects.first().embedder_version)
    cached = gallery_map_cached(key=key)
    assert cached is not None and cached["built_at"] == first["built_at"]
    _, again = _data(site["manager"])
    assert again["built_at"] == first["built_at"]  # served from the cache
    face_delete(face=site["misfiled"])
    _, after = _data(site["manager"])
    assert after["built_at"] != first["built_at"] and after["suspects"] == [] and after["lookalikes"] == []
    assert len(after["points"]) == 8
    # The admin sees everyone: another audience, another map.
    _, everyone = _data(site["admin"])
    assert {p["person"] for p in everyone["points"]} >= {employees["rose_leslie"].pk}


def test_an_earlier_model_version_stays_selectable(site: dict) -> None:
    _, current = _data(site["manager"])
    assert [v["current"] for v in current["versions"]] == [True]
    # Some photos still carry vectors of another model version (as during a switch).
    face = FaceImage.objects.filter(employee=site["employees"]["kit_harington"]).first()
    FaceImage.objects.filter(pk=face.pk).update(embedder_version="older")
    _, data = _data(site["manager"])
    keys = [v["key"] for v in data["versions"]]
    assert len(keys) == 2 and data["versions"][-1]["current"]
    older = next(v["key"] for v in data["versions"] if not v["current"])
    code, before = _data(site["manager"], version=older)
    assert code == 200 and before["version"] == older
    assert [p["face"] for p in before["points"]] == [face.pk]


def test_employees_cannot_open_the_map() -> None:
    user = User.objects.create_user("worker")
    Employee.objects.create(user=user, code="W", full_name="Worker", department=Department.objects.create(name="A"))
    client = Client()
    client.force_login(user)
    assert client.get("/gallery/map/").status_code == 404
    assert client.get("/gallery/map/data/").status_code == 404


def test_suspects_and_lookalikes_on_plain_vectors() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    vectors, labels = [], []
    for person in range(3):
        for _ in range(3):
            vectors.append(centres[person] + rng.normal(0, 0.05, 16))
            labels.append(person)
    vectors.append(centres[1] + rng.normal(0, 0.05, 16))  # person 1's face filed under person 0
    labels.append(0)
    vectors = np.array(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.array(labels)
    [suspect] = wrong_person_suspects(vectors, labels)
    assert suspect["index"] == 9 and suspect["closer_to"] == 1
    pairs = overlapping_people(vectors, labels, threshold=0.9)
    assert [(p["a"], p["b"]) for p in pairs] == [(0, 1)]
    assert overlapping_people(vectors, labels, threshold=0.999) == []


def test_a_learned_model_version_is_mapped_under_its_head_and_its_parent_stays_selectable(site: dict, people,
                                                                                        tmp_path: Path) -> None:
    from recognition.engine import get_pipeline
    from recognition.learning import model_version_activate
    from recognition.models import ModelVersion
    from recognition.pipeline.finetune import ProjectionHead

    manager, employees = site["manager"], site["employees"]
    code, base = _data(manager)
    assert code == 200 and [(v["current"], v["model_version"]) for v in base["versions"]] == [(True, None)]
    # A learned photo of Kit's that no version holds yet stays off the map, as off the gallery.
    learned = face_enroll(employee=employees["kit_harington"], data=people["kit_harington"][2].read_bytes(),
                          source=FaceImage.Source.LEARNED)
    _, unchanged = _data(manager)
    assert learned.pk not in {p["face"] for p in unchanged["points"]}
    # A learned version holding that photo, with a head that squeezes every face towards one direction.
    embedder = get_pipeline().embedder
    dim = embedder.dim
    bias = np.zeros(dim, dtype=np.float32)
    bias[0] = 1.0
    head = tmp_path / "head.pt"
    ProjectionHead(np.eye(dim, dtype=np.float32) * 0.01, bias).save(head)
    version = ModelVersion.objects.create(version="test+head", embedder=embedder.name,
                                          embedder_version=embedder.version, head_path=str(head))
    version.learned_faces.set([learned])
    model_version_activate(version=version)

    code, after = _data(manager)
    assert code == 200
    assert [(v["current"], v["model_version"]) for v in after["versions"]] == [(False, None), (True, version.pk)]
    points = {p["face"]: p for p in after["points"]}
    assert len(points) == len(base["points"]) + 1 and points[learned.pk]["source"] == "learned"
    assert len(after["lookalikes"]) == 6  # under the head every pair of the four people overlaps
    assert len(base["lookalikes"]) < 6
    # Before: the base model's map, as it was (no learned photo).
    earlier = next(v["key"] for v in after["versions"] if not v["current"])
    code, before = _data(manager, version=earlier)
    assert code == 200 and before["version"] == earlier
    assert {p["face"] for p in before["points"]} == {p["face"] for p in base["points"]}


def test_the_before_map_is_offered_even_when_nobody_opened_the_map_before_the_switch(site: dict) -> None:
    """The version a rollback would restore (here the base embedder) is always listed; choosing it
    builds its map then."""
    from recognition.engine import get_pipeline
    from recognition.learning import model_version_activate
    from recognition.models import ModelVersion

    embedder = get_pipeline().embedder
    first = ModelVersion.objects.create(version="night-1", embedder=embedder.name, embedder_version=embedder.version)
    model_version_activate(version=first)
    second = ModelVersion.objects.create(version="night-2", embedder=embedder.name, embedder_version=embedder.version,
                                         parent=first)
    model_version_activate(version=second)
    code, after = _data(site["manager"])
    assert code == 200
    assert [(v["current"], v["model_version"]) for v in after["versions"]] == [(False, first.pk), (True, second.pk)]
    earlier = next(v["key"] for v in after["versions"] if not v["current"])
    code, before = _data(site["manager"], version=earlier)
    assert code == 200 and before["status"] == "ready" and before["version"] == earlier
    assert {p["face"] for p in before["points"]} == {p["face"] for p in after["points"]}
