"""GalleryIndex.changed: any sequence of additions and removals answers exactly as an index built
from scratch on the rows that remain (and hub offsets: exactly while the cohort is the whole
gallery, within a bound when it is a sample)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recognition.pipeline.embedding import l2_normalise
from recognition.pipeline.matching import CohortNorm, GalleryIndex

DIM = 32
PEOPLE = 24


def _face(person: int, photo: int) -> np.ndarray:
    """A photo of ``person``: the person's centre plus some per-photo noise (deterministic)."""
    rng = np.random.default_rng(person)
    centre = rng.normal(size=DIM)
    noise = np.random.default_rng(10_000 + person * 100 + photo).normal(size=DIM)
    return l2_normalise(centre + 0.5 * noise)


def _probes() -> np.ndarray:
    rng = np.random.default_rng(77)
    near = np.stack([_face(p, 99) for p in range(PEOPLE)])
    return np.vstack([near, l2_normalise(rng.normal(size=(6, DIM)))])


def _same_answers(got: GalleryIndex, want: GalleryIndex) -> None:
    assert len(got) == len(want)
    pairs = [sorted(zip(index.keys.tolist(), index.labels.tolist(), strict=True)) for index in (got, want)]
    assert pairs[0] == pairs[1]
    order_got, order_want = np.argsort(got.keys), np.argsort(want.keys)
    assert got.offsets[order_got] == pytest.approx(want.offsets[order_want], abs=1e-5)
    probes = _probes()
    for a, b in zip(got.search(probes, k=5), want.search(probes, k=5), strict=True):
        assert [m.label for m in a] == [m.label for m in b]
        assert [m.score for m in a] == pytest.approx([m.score for m in b], abs=1e-5)
    if len(want):
        burst_a, burst_b = got.decide_burst(probes[:3], threshold=0.5), want.decide_burst(probes[:3], threshold=0.5)
        assert (burst_a.best.label, burst_a.known) == (burst_b.best.label, burst_b.known)
        label = int(want.labels[0])
        assert got.score_label(probes[0], label) == pytest.approx(want.score_label(probes[0], label), abs=1e-5)


# An operation: ("add", person, photos) or ("remove", person).
operation = st.one_of(
    st.tuples(st.just("add"), st.integers(0, PEOPLE - 1), st.integers(1, 3)),
    st.tuples(st.just("remove"), st.integers(0, PEOPLE - 1)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(0, PEOPLE), ops=st.lists(operation, max_size=25),
       cohort=st.sampled_from([None, CohortNorm(neighbours=3)]), half=st.sampled_from([False, True]))
def test_changes_answer_as_a_rebuild(start: int, ops: list[tuple], cohort: CohortNorm | None, half: bool) -> None:
    rows: dict[int, tuple[int, np.ndarray]] = {}  # key -> (person, vector)
    next_key = 0
    for person in range(start):
        rows[next_key] = (person, _face(person, 0))
        next_key += 1

    def rebuild() -> GalleryIndex:
        keys = sorted(rows)
        return GalleryIndex(np.array([rows[k][1] for k in keys]).reshape(-1, DIM), [rows[k][0] for k in keys],
                            dim=DIM, half=half, cohort=cohort, keys=keys)

    index = rebuild()
    for op in ops:
        if op[0] == "add":
            _, person, photos = op
            keys = list(range(next_key, next_key + photos))
            vectors = np.stack([_face(person, key) for key in keys])
            for key, vector in zip(keys, vectors, strict=True):
                rows[key] = (person, vector)
            next_key += photos
            index = index.changed(vectors=vectors, labels=[person] * photos, keys=keys)
        else:
            gone = [key for key, (person, _) in rows.items() if person == op[1]]
            for key in gone:
                del rows[key]
            index = index.changed(remove=gone)
        _same_answers(index, rebuild())
    assert (index._half is not None) == (half and len(index) > 0)


def test_an_older_snapshot_never_changes() -> None:
    """Appends share storage with the snapshot they came from; it keeps answering as before, and a
    second change of the same old snapshot does not overwrite the first one's rows."""
    base = GalleryIndex(np.stack([_face(p, 0) for p in range(5)]), range(5), keys=range(5))
    before = base.search(_probes(), k=3)
    first = base.changed(vectors=np.stack([_face(7, 1)]), labels=[7], keys=[100])
    second = base.changed(vectors=np.stack([_face(8, 1)]), labels=[8], keys=[101])
    assert base.search(_probes(), k=3) == before and len(base) == 5
    assert first.search(_face(7, 1), k=1)[0][0].label == 7
    assert second.search(_face(8, 1), k=1)[0][0].label == 8
    assert first.search(_face(8, 1), k=1)[0][0].label != 8
    removed = first.changed(remove=[0, 1])
    assert len(first) == 6 and len(removed) == 4 and 0 not in removed.labels


def test_growth_is_amortised() -> None:
    """Adding one row at a time reallocates the storage O(log n) times, not n times."""
    index = GalleryIndex(np.zeros((0, DIM)), [], dim=DIM)
    stores = set()
    for key in range(2000):
        index = index.changed(vectors=_face(key % 50, key)[None], labels=[key % 50], keys=[key])
        stores.add(id(index._store))
    assert len(index) == 2000 and len(stores) < 20


def test_a_new_row_is_measured_against_the_fixed_sampled_cohort() -> None:
    """Beyond the exact cohort: a new photo's offset comes from the index's fixed sample, the other
    rows keep theirs, and after refit_fraction of the gallery changed every offset is refitted."""
    people = 400
    vectors = np.stack([_face(p % 200, p) for p in range(people)])
    cohort = CohortNorm(neighbours=3, max_cohort=100, refit_fraction=0.05)
    index = GalleryIndex(vectors, np.arange(people) % 200, cohort=cohort, keys=range(people))
    assert index.fitted is not None and not index.fitted.exact and len(index.fitted.labels) == 100
    added = index.changed(vectors=_face(3, 555)[None], labels=[3], keys=[555])
    assert added.offsets[:-1].tolist() == index.offsets.tolist() and added.stale == 1
    raw = cohort.raw(_face(3, 555)[None], np.array([3]), index.fitted)
    assert added.offsets[-1] == pytest.approx(cohort.weight * (raw[0] - index.fitted.centre), abs=1e-6)
    later = added
    for key in range(556, 556 + 20):
        later = later.changed(vectors=_face(key % 200, key)[None], labels=[key % 200], keys=[key])
    assert later.stale == 0  # 21 > 5% of 400: refitted
    assert later.offsets == pytest.approx(GalleryIndex(later.vectors, later.labels, cohort=cohort, keys=later.keys).offsets,
                                          abs=1e-5)


def test_the_sampled_cohort_equals_the_exact_one_when_it_covers_the_gallery_and_stays_close_otherwise() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    centres = rng.normal(size=(n // 2, DIM))
    # Anisotropic, as real embeddings are: some directions vary more, so some faces are hubs.
    vectors = l2_normalise((centres[np.arange(n) // 2] + 0.6 * rng.normal(size=(n, DIM))) * np.linspace(0.2, 2, DIM))
    labels = np.arange(n) // 2
    exact = CohortNorm(max_cohort=n).offsets(vectors, labels)
    assert CohortNorm(max_cohort=n, max_rows=n).offsets(vectors, labels) == pytest.approx(exact, abs=1e-6)
    # Samples: centred, the same hubs stand out, and the error shrinks as the sample grows.
    errors = []
    for size in (300, 1000, 2000):
        sampled = CohortNorm(max_cohort=size).offsets(vectors, labels)
        assert abs(float(sampled.mean())) < 1e-5
        assert np.corrcoef(exact, sampled)[0, 1] > 0.6
        errors.append(float(np.abs(sampled - exact).mean()))
    assert errors[0] > errors[1] > errors[2] and errors[1] < 0.75 * float(exact.std())
    # Beyond max_rows the sample shrinks so that n x K stays what max_rows x max_cohort was.
    assert CohortNorm(max_cohort=5000, max_rows=20_000).cohort_size(100_000) == 1000
    assert CohortNorm().cohort_size(20_000) == 5000 and CohortNorm().cohort_size(3000) == 3000


def test_two_threads_changing_and_searching_see_whole_snapshots() -> None:
    """One thread publishes changed snapshots while another searches whatever is current: every
    answer comes from one consistent snapshot (no torn reads of shared storage)."""
    current = {"index": GalleryIndex(np.stack([_face(p, 0) for p in range(10)]), range(10), keys=range(10))}
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            index = current["index"]
            for key in range(10, 400):
                index = index.changed(vectors=_face(key, 0)[None], labels=[key], keys=[key])
                if key % 7 == 0:
                    index = index.changed(remove=[key - 5])
                current["index"] = index
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                index = current["index"]
                label = int(index.labels[-1])
                assert index.search(_face(label, 0), k=1)[0][0].label == label
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
