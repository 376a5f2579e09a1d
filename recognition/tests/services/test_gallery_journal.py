"""The gallery change journal: every process brings its index up to date by reading only the
employees that changed, and the answers are exactly those of an index rebuilt from the database."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal.models import Employee
from portal.services import employee_delete, employee_update
from recognition import selectors
from recognition.engine import cohort_norm, get_pipeline
from recognition.models import FaceImage, GalleryChange
from recognition.pipeline.image import load_image
from recognition.selectors import build_index, gallery_base_vectors, gallery_index, gallery_version
from recognition.services import EnrolmentRejected, face_delete, face_enroll, gallery_changed

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["barack_obama", "joe_biden", "kit_harington", "rose_leslie", "alex_lacamoire"]


@pytest.fixture(autouse=True)
def _state_row() -> None:
    """The gallery's state row exists (its first creation starts a new epoch: a rebuild anywhere)."""
    gallery_changed(employees=[])


@pytest.fixture(scope="module")
def probes(people: dict[str, list[Path]]) -> np.ndarray:
    """Every fixture photo's vector: the queries both indexes must answer alike."""
    pipeline = get_pipeline()
    return np.stack([pipeline.embed_single(load_image(path.read_bytes())).vector
                     for name in NAMES for path in people[name]])


def _rebuilt() -> object:
    vectors, labels, keys = gallery_base_vectors(version=None)
    return build_index(vectors, labels, dim=get_pipeline().embedder.dim, cohort=cohort_norm(), keys=keys)


def _assert_same_answers(got: object, want: object, probes: np.ndarray) -> None:
    assert sorted(got.keys.tolist()) == sorted(want.keys.tolist())
    for a, b in zip(got.search(probes, k=5), want.search(probes, k=5), strict=True):
        assert [m.label for m in a] == [m.label for m in b]
        assert [m.score for m in a] == pytest.approx([m.score for m in b], abs=1e-5)
    if len(want):
        a, b = got.decide_burst(probes[:3], threshold=0.5), want.decide_burst(probes[:3], threshold=0.5)
        assert (a.best.label, a.known) == (b.best.label, b.known)
        assert a.best.score == pytest.approx(b.best.score, abs=1e-5)


operation = st.one_of(
    st.tuples(st.just("enrol"), st.integers(0, 4), st.integers(0, 2)),
    st.tuples(st.just("delete_face"), st.integers(0, 20)),
    st.tuples(st.just("deactivate"), st.integers(0, 4)),
    st.tuples(st.just("reactivate"), st.integers(0, 4)),
    st.tuples(st.just("delete_employee"), st.integers(0, 4)),
)


@hypothesis_settings(max_examples=10, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=8), hubs=st.booleans())
def test_any_sequence_of_changes_answers_as_a_rebuild(ops: list[tuple], hubs: bool, people: dict[str, list[Path]],
                                                      probes: np.ndarray, settings) -> None:
    settings.ROLLCALL_COHORT_NEIGHBOURS = 2 if hubs else 10  # 2: offsets in play with five people
    for employee in Employee.objects.all():
        employee_delete(employee=employee)
    staff: dict[int, Employee] = {}

    def employee(person: int) -> Employee:
        if person not in staff or not Employee.objects.filter(pk=staff[person].pk).exists():
            staff[person] = Employee.objects.create(code=f"P-{person}-{len(staff)}-{Employee.objects.count()}",
                                                    full_name=NAMES[person])
        return staff[person]

    gallery_changed(employees=[])  # the gallery's state row exists (its first creation starts a new epoch)
    gallery_index()
    full = selectors.index_loads["full"]
    for op in ops:
        if op[0] == "enrol":
            photos = people[NAMES[op[1]]]
            try:
                face_enroll(employee=employee(op[1]), data=photos[op[2] % len(photos)].read_bytes())
            except EnrolmentRejected:
                pass  # the same photo twice
        elif op[0] == "delete_face":
            faces = list(FaceImage.objects.order_by("pk"))
            if faces:
                face_delete(face=faces[op[1] % len(faces)])
        elif op[0] in ("deactivate", "reactivate"):
            employee_update(employee=employee(op[1]), is_active=op[0] == "reactivate")
        else:
            employee_delete(employee=employee(op[1]))
        _assert_same_answers(gallery_index(), _rebuilt(), probes)
    assert selectors.index_loads["full"] == full, "every change was applied from the journal"


def test_an_enrolment_is_applied_from_the_journal_and_a_model_switch_rebuilds(people: dict[str, list[Path]]) -> None:
    ana = Employee.objects.create(code="E-1", full_name="Ana")
    before = gallery_index()
    loads = dict(selectors.index_loads)
    face = face_enroll(employee=ana, data=people["barack_obama"][0].read_bytes())
    change = GalleryChange.objects.get(version=gallery_version()[1])
    assert (change.op, change.employee_id, change.face_id) == ("add", ana.pk, face.pk)
    after = gallery_index()
    assert after is not before and len(after) == len(before) + 1
    assert selectors.index_loads == {"full": loads["full"], "incremental": loads["incremental"] + 1}
    gallery_changed()  # no description (a model version switch): every process rebuilds
    assert GalleryChange.objects.get(version=gallery_version()[1]).op == "reload"
    gallery_index()
    assert selectors.index_loads["full"] == loads["full"] + 1


def test_a_journal_that_does_not_reach_back_means_a_rebuild(people: dict[str, list[Path]], settings) -> None:
    ana = Employee.objects.create(code="E-1", full_name="Ana")
    gallery_index()
    face_enroll(employee=ana, data=people["barack_obama"][0].read_bytes())
    GalleryChange.objects.all().delete()  # as pruning would, for a process this far behind
    full = selectors.index_loads["full"]
    index = gallery_index()
    assert selectors.index_loads["full"] == full + 1 and len(index) == 1


def test_old_journal_rows_are_pruned(settings) -> None:
    settings.ROLLCALL_GALLERY_JOURNAL_KEEP = 50
    for _ in range(200):
        gallery_changed(employees=[1])
    top = gallery_version()[1]
    versions = list(GalleryChange.objects.values_list("version", flat=True))
    assert top > 200 and max(versions) == top and top - 100 < min(versions) <= top - 50


def test_two_threads_share_one_incremental_update(people: dict[str, list[Path]]) -> None:
    """Two threads asking at once after a change: one applies the journal, the other waits and
    gets the same index."""
    ana = Employee.objects.create(code="E-1", full_name="Ana")
    gallery_index()
    face_enroll(employee=ana, data=people["barack_obama"][0].read_bytes())
    incremental = selectors.index_loads["incremental"]
    results: list[object] = []
    barrier = threading.Barrier(2)

    def ask() -> None:
        from django.db import connection

        try:
            barrier.wait()
            results.append(gallery_index())
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and results[0] is results[1] and len(results[0]) == 1
    assert selectors.index_loads["incremental"] == incremental + 1
