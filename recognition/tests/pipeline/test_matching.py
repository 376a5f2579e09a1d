from __future__ import annotations

import numpy as np
import pytest

from recognition.pipeline.embedding import l2_normalise
from recognition.pipeline.matching import CohortNorm, GalleryIndex, cosine_to_distance


def _random_unit(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, dim)))


def test_exact_search_finds_the_planted_vector_among_many() -> None:
    vectors = _random_unit(5000)
    index = GalleryIndex(vectors, np.arange(5000))
    query = l2_normalise(vectors[1234] + 0.05 * _random_unit(1, seed=9)[0])
    top = index.search(query, k=3)[0]
    assert top[0].label == 1234
    assert top[0].score > 0.99 and top[0].score >= top[1].score >= top[2].score


def test_search_returns_distinct_people_with_their_best_score() -> None:
    vectors = _random_unit(6)
    labels = [7, 7, 7, 8, 9, 10]
    index = GalleryIndex(vectors, labels)
    top = index.search(vectors[1], k=3)[0]
    assert [m.label for m in top][0] == 7
    assert len({m.label for m in top}) == 3
    assert top[0].score == pytest.approx(1.0, abs=1e-6)


def test_decide_applies_the_threshold() -> None:
    vectors = _random_unit(10)
    index = GalleryIndex(vectors, range(10))
    assert index.decide(vectors[3], threshold=0.9).known
    stranger = _random_unit(1, seed=99)[0]
    decision = index.decide(stranger, threshold=0.9)
    assert not decision.known and decision.best is not None and decision.best.score < 0.9


def test_empty_gallery_knows_nobody() -> None:
    index = GalleryIndex(np.zeros((0, 128)), [], dim=128)
    decision = index.decide(_random_unit(1)[0], threshold=0.5)
    assert decision.best is None and not decision.known and len(index) == 0


def test_mismatched_labels_are_rejected() -> None:
    with pytest.raises(ValueError):
        GalleryIndex(_random_unit(3), [1, 2])


def test_cosine_to_distance() -> None:
    assert cosine_to_distance(1.0) == pytest.approx(0.0)
    assert cosine_to_distance(0.0) == pytest.approx(np.sqrt(2))


def _towards(target: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector with exactly ``cosine`` similarity to ``target``."""
    noise = _random_unit(1, dim=target.shape[0], seed=seed)[0]
    noise = l2_normalise(noise - (noise @ target) * target)
    return cosine * target + np.sqrt(1 - cosine**2) * noise


def test_a_burst_scores_each_person_by_the_mean_over_its_views() -> None:
    gallery = _random_unit(4)
    index = GalleryIndex(np.vstack([gallery, gallery[2:3]]), [10, 11, 12, 13, 12])  # 12 owns two rows
    # Views scoring 0.86, 0.90, 0.94 against person 12: one view alone is under 0.9, the mean is not.
    views = np.stack([_towards(gallery[2], c, seed) for c, seed in ((0.86, 1), (0.90, 2), (0.94, 3))])
    decision = index.decide_burst(views, threshold=0.9)
    assert decision.known and decision.best.label == 12
    assert decision.best.score == pytest.approx(0.90, abs=1e-4)
    assert not index.decide(views[0], threshold=0.9).known
    # Mean under the threshold: unknown, though one view alone would pass.
    weaker = np.stack([_towards(gallery[2], c, seed) for c, seed in ((0.80, 4), (0.84, 5), (0.95, 6))])
    assert index.decide(weaker[2], threshold=0.9).known and not index.decide_burst(weaker, threshold=0.9).known
    # A person first in fewer than half of the views is not accepted, whatever the mean.
    split = np.stack([gallery[0], gallery[0], gallery[1], gallery[1], gallery[1]])
    assert index.decide_burst(split, threshold=0.3).best.label == 11
    mixed = np.stack([gallery[0], gallery[1], gallery[2], gallery[3]])
    assert not index.decide_burst(mixed, threshold=0.2).known
    empty = GalleryIndex(np.zeros((0, 128)), [], dim=128)
    assert not empty.decide_burst(views, threshold=0.5).known


def _gallery_with_a_hub(people: int = 40, dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``people`` random faces plus a "hub" (row 0): a face that resembles ten of them."""
    others = _random_unit(people, dim=dim, seed=5)
    hub = l2_normalise(l2_normalise(others[: min(10, people)].sum(axis=0)) + 0.1 * _random_unit(1, dim=dim, seed=6)[0])
    return np.vstack([hub, others]), np.arange(people + 1)


def test_hub_normalisation_lowers_the_face_that_resembles_everybody() -> None:
    vectors, labels = _gallery_with_a_hub()
    cohort = CohortNorm(neighbours=5, weight=0.5)
    offsets = cohort.offsets(vectors, labels)
    assert offsets[0] == offsets.max() and offsets[0] > 2 * np.sort(offsets)[-2]
    assert abs(float(offsets.mean())) < 1e-6  # centred: the threshold keeps its meaning
    # A stranger halfway between the hub and one person: plain search names the hub, the
    # normalised search the person (the hub would collect every such stranger).
    stranger = l2_normalise(vectors[0] * 1.05 + vectors[30])
    plain, normalised = GalleryIndex(vectors, labels), GalleryIndex(vectors, labels, cohort=cohort)
    assert plain.search(stranger, k=1)[0][0].label == 0
    assert normalised.search(stranger, k=1)[0][0].label == 30
    scores = normalised.scores(stranger)[0]
    assert scores == pytest.approx(vectors @ stranger - offsets, abs=1e-6)
    assert normalised.score_label(stranger, 30) == pytest.approx(float(scores[30]), abs=1e-6)
    assert normalised.score_label(stranger, 999) is None
    burst = normalised.decide_burst(np.stack([stranger, stranger]), threshold=-1.0)
    assert burst.best.label == 30 and burst.best.score == pytest.approx(float(scores[30]), abs=1e-6)


def test_hub_normalisation_needs_enough_people_and_ignores_ones_own_photos() -> None:
    vectors, labels = _gallery_with_a_hub(people=4)
    assert not CohortNorm(neighbours=10).offsets(vectors, labels).any()  # 5 people: too few to judge
    assert not GalleryIndex(vectors, labels, cohort=CohortNorm(neighbours=10))._offset
    # Several photos of one person are not each other's neighbours.
    twins = np.vstack([vectors, vectors[1:2]])
    offsets = CohortNorm(neighbours=2).offsets(twins, np.r_[labels, 1])
    assert offsets[1] == pytest.approx(offsets[-1], abs=1e-6)
    assert CohortNorm(weight=0).offsets(vectors, labels).tolist() == [0.0] * len(labels)


def test_hub_normalisation_uses_a_sample_of_large_galleries_and_keeps_the_exact_float16_answer() -> None:
    rng = np.random.default_rng(11)
    n, dim = 12_000, 640
    vectors = l2_normalise(rng.normal(size=(20, dim))[rng.integers(0, 20, n)] + 0.4 * rng.normal(size=(n, dim)))
    labels = np.arange(n)
    cohort = CohortNorm(max_cohort=2000)
    exact = GalleryIndex(vectors, labels, half=False, cohort=cohort)
    half = GalleryIndex(vectors, labels, half=True, cohort=cohort)
    assert exact._offset and np.isfinite(exact.offsets).all()
    queries = l2_normalise(vectors[rng.integers(0, n, 8)] + 0.2 * rng.normal(size=(8, dim)))
    for want, got in zip(exact.search(queries, k=10), half.search(queries, k=10), strict=True):
        assert [m.label for m in got] == [m.label for m in want]
        assert [m.score for m in got] == pytest.approx([m.score for m in want], abs=1e-6)


@pytest.mark.parametrize("clustered", [False, True])
def test_the_float16_prescan_gives_the_exact_answer(clustered: bool) -> None:
    """Large galleries are pre-scanned in float16 and rescored in float32: same people, same
    scores, same order as the plain float32 search, also where near neighbours crowd together."""
    rng = np.random.default_rng(7)
    n, dim = 40_000, 640
    if clustered:  # many people who look alike: scores packed within float16's rounding
        centres = rng.normal(size=(20, dim))
        vectors = l2_normalise(centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim)))
    else:
        vectors = _random_unit(n, dim=dim, seed=3)
    labels = rng.integers(0, n // 2, n)  # people own several rows
    exact, half = GalleryIndex(vectors, labels, half=False), GalleryIndex(vectors, labels, half=True)
    assert half._half is not None and exact._half is None
    queries = l2_normalise(vectors[rng.integers(0, n, 12)] + 0.2 * rng.normal(size=(12, dim)))
    for want, got in zip(exact.search(queries, k=10), half.search(queries, k=10)):
        assert [m.label for m in got] == [m.label for m in want]
        assert [m.score for m in got] == pytest.approx([m.score for m in want], abs=1e-6)
