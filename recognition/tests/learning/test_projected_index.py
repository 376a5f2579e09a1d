"""The head-aware index: the gallery's base vectors and every probe go through the same head,
exactly once, so recognition under a model version compares vectors of that version only."""

from __future__ import annotations

import numpy as np

from recognition.pipeline.embedding import l2_normalise
from recognition.pipeline.matching import CohortNorm, GalleryIndex
from recognition.selectors import ProjectedIndex, build_index


class _Head:
    def __init__(self, dim: int) -> None:
        self.matrix = np.random.default_rng(3).normal(size=(dim, dim)).astype(np.float32)
        self.calls = 0

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        self.calls += 1
        return l2_normalise(np.asarray(vectors, dtype=np.float32) @ self.matrix)


def test_a_projected_index_answers_as_an_index_of_projected_vectors() -> None:
    rng = np.random.default_rng(0)
    gallery = l2_normalise(rng.normal(size=(60, 32)).astype(np.float32))
    labels = np.repeat(np.arange(20), 3)
    probes = l2_normalise(gallery[:5] + 0.3 * rng.normal(size=(5, 32)).astype(np.float32))
    head = _Head(32)
    cohort = CohortNorm(neighbours=5)
    projected = build_index(gallery, labels, dim=32, cohort=cohort, head=head)
    assert isinstance(projected, ProjectedIndex)
    plain = GalleryIndex(head.apply(gallery), labels, dim=32, cohort=cohort)
    assert np.allclose(projected.scores(probes), plain.scores(head.apply(probes)), atol=1e-6)
    assert projected.decide_burst(probes, threshold=0.5) == plain.decide_burst(head.apply(probes), threshold=0.5)
    assert projected.decide(probes[0], threshold=0.5) == plain.decide(head.apply(probes)[0], threshold=0.5)
    assert projected.search(probes, k=3) == plain.search(head.apply(probes), k=3)
    assert projected.score_label(probes[1], 0) == plain.score_label(head.apply(probes)[1], 0)
    # Without a head: the plain index of base vectors, the same answers as before any learning.
    base = build_index(gallery, labels, dim=32, cohort=cohort)
    assert base.decide_burst(probes, threshold=0.5) == GalleryIndex(gallery, labels, dim=32, cohort=cohort).decide_burst(
        probes, threshold=0.5)


def test_rows_added_under_a_head_are_projected_too() -> None:
    """An incremental change of a projected index (a new enrolment under a learned head) answers as
    the projected index rebuilt from all the base vectors."""
    rng = np.random.default_rng(1)
    gallery = l2_normalise(rng.normal(size=(40, 32)).astype(np.float32))
    labels = np.repeat(np.arange(20), 2)
    head = _Head(32)
    cohort = CohortNorm(neighbours=3)
    index = build_index(gallery[:30], labels[:30], dim=32, cohort=cohort, head=head, keys=np.arange(30))
    changed = index.changed(vectors=gallery[30:], labels=labels[30:], keys=np.arange(30, 40)).changed(remove=[0, 1])
    rebuilt = build_index(gallery[2:], labels[2:], dim=32, cohort=cohort, head=head, keys=np.arange(2, 40))
    assert isinstance(changed, ProjectedIndex) and len(changed) == 38
    probes = l2_normalise(gallery + 0.3 * rng.normal(size=gallery.shape).astype(np.float32))
    for got, want in zip(changed.search(probes, k=3), rebuilt.search(probes, k=3), strict=True):
        assert [m.label for m in got] == [m.label for m in want]
        assert np.allclose([m.score for m in got], [m.score for m in want], atol=1e-5)
