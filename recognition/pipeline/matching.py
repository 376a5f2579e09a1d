"""Matching: exact cosine search of a gallery matrix, and the known/unknown decision.

The gallery is an (N, dim) float32 matrix of unit vectors with one label per row (an employee id;
a person may own several rows). Search returns the best-scoring *people* (a person's score is the
best of their rows), so several photos per person help without crowding the top-k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recognition.pipeline.embedding import l2_normalise


@dataclass(frozen=True)
class Match:
    label: int
    score: float  # cosine similarity in [-1, 1]; higher is more alike


@dataclass(frozen=True)
class Decision:
    """The answer for one probe: the best match (if any), whether it is known, and the top-k."""

    best: Match | None
    known: bool
    top: tuple[Match, ...]


def cosine_to_distance(score: float) -> float:
    """Euclidean distance between unit vectors with cosine ``score`` (dlib's usual scale)."""
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * score)))


# Large galleries are first scored from a float16 copy (half the memory traffic; the scan is
# memory-bound), then the rows that can still be in the top-k are rescored exactly in float32.
# A float16 score differs from the exact one by at most about 1e-3 for unit vectors (inputs and
# output rounded to float16, float32 accumulation; measured worst 3e-4): every row within
# HALF_MARGIN (more than twice that) of the k-th float16 score is rescored, so the result is the
# exact search's.
HALF_MIN_ELEMENTS = 4_000_000
HALF_MARGIN = 4e-3


_HALF_FASTER: dict[int, bool] = {}  # per vector size: the answer depends on the CPU, measured once per process


def _half_is_faster(vectors: np.ndarray) -> bool:
    """Whether this CPU scans the float16 copy faster than float32 (F16C/AVX-512 do; others may not).
    Measured on the first large gallery of each vector size; a rebuilt index reuses the answer."""
    dim = vectors.shape[1]
    if dim not in _HALF_FASTER:
        _HALF_FASTER[dim] = _measure_half(vectors)
    return _HALF_FASTER[dim]


def _measure_half(vectors: np.ndarray) -> bool:
    import time

    import torch

    query = vectors[0]
    half, half_query = torch.from_numpy(vectors).to(torch.float16), torch.from_numpy(query).to(torch.float16)

    def best(run) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    return best(lambda: half @ half_query) < 0.75 * best(lambda: vectors @ query)


@dataclass(frozen=True)
class CohortNorm:
    """Gallery-side score normalisation against hubs.

    Some gallery faces resemble many people (a "hub": a common face shape, a blurred or turned
    photo) and collect the best score of strangers and of other employees alike. Each gallery row
    gets an offset: ``weight`` x (its mean cosine to its ``neighbours`` most similar rows of other
    people - the gallery's average of that), and every score against the row is lowered by it.
    The offsets average zero, so the threshold keeps its meaning; the cohort is the gallery itself
    (what the deployment has), a seeded sample of ``max_cohort`` rows for large galleries.
    On LFW's 1:N protocol (fused, 622 people) this raises the probes recognised at the 1%
    unknown-accept point from 81.0% to 86.8% with closed-set rank-1 unchanged (README).
    """

    neighbours: int = 10
    weight: float = 0.5
    max_cohort: int = 5000
    max_rows: int = 20_000  # beyond this the offsets would cost seconds per index rebuild: none are used

    def offsets(self, vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
        offsets = np.zeros(len(labels), dtype=np.float32)
        if self.weight == 0 or len(labels) > self.max_rows or len(np.unique(labels)) <= self.neighbours:
            return offsets
        cohort = np.arange(len(labels))
        if len(cohort) > self.max_cohort:
            cohort = np.sort(np.random.default_rng(0).choice(cohort, self.max_cohort, replace=False))
        cohort_vectors, cohort_labels = vectors[cohort], labels[cohort]
        for start in range(0, len(labels), 2048):
            stop = min(start + 2048, len(labels))
            block = vectors[start:stop] @ cohort_vectors.T
            block[labels[start:stop, None] == cohort_labels[None, :]] = -np.inf  # not one's own photos
            offsets[start:stop] = np.partition(block, -self.neighbours, axis=1)[:, -self.neighbours:].mean(axis=1)
        finite = np.isfinite(offsets)  # a sampled cohort may hold too few other people for a row
        offsets[~finite] = offsets[finite].mean() if finite.any() else 0.0
        return (self.weight * (offsets - offsets.mean())).astype(np.float32)


class GalleryIndex:
    """Exact search over a gallery. Immutable: build a new index when the gallery changes.

    ``half``: None chooses by size and by a quick measurement on this CPU; True / False force
    the float16 pre-scan on or off (the answers are the same either way). ``cohort``: scores are
    normalised against gallery hubs (``CohortNorm``); every score the index returns is then the
    cosine minus the row's offset."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray | list[int], *, dim: int | None = None,
                 half: bool | None = None, cohort: CohortNorm | None = None) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) == 0:
            self.vectors = np.zeros((0, dim or 0), dtype=np.float32)
        else:
            self.vectors = l2_normalise(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if self.vectors.ndim != 2:
            raise ValueError(f"expected an (N, dim) matrix, got shape {self.vectors.shape}")
        if self.vectors.shape[0] != labels.shape[0]:
            raise ValueError(f"{self.vectors.shape[0]} vectors but {labels.shape[0]} labels")
        self.labels = labels
        self.offsets = cohort.offsets(self.vectors, labels) if cohort and len(labels) else np.zeros(len(labels), np.float32)
        self._offset = bool(self.offsets.any())
        self._half = None
        if half is None:
            half = self.vectors.size >= HALF_MIN_ELEMENTS and _half_is_faster(self.vectors)
        if half and len(labels):
            import torch

            self._half = torch.from_numpy(self.vectors).to(torch.float16)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(M, dim) queries -> (M, N) scores against every gallery row: cosine similarity, less the
        row's hub offset when the index normalises (``cohort``)."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        scores = queries @ self.vectors.T
        return scores - self.offsets if self._offset else scores

    def score_label(self, query: np.ndarray, label: int) -> float | None:
        """The best score of ``label``'s rows (None when the label has none): 1:1 verification on
        the same scale as search."""
        if len(self) == 0 or label not in self._rows_by_label_map():
            return None
        rows = self._rows(label)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        return float((self.vectors[rows] @ query - self.offsets[rows]).max())

    def search(self, queries: np.ndarray, *, k: int = 5) -> list[list[Match]]:
        """For each query, up to k distinct labels with their best score, best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self) == 0:
            return [[] for _ in range(queries.shape[0])]
        # Over-fetch rows so that k distinct people survive when people own several rows.
        fetch = min(len(self), max(k * 4, k + 16))
        results = []
        for rows, scores in self._candidates(queries, fetch):
            order = np.argsort(-scores, kind="stable")
            seen: dict[int, float] = {}
            for index, score in zip(rows[order], scores[order], strict=True):
                label = int(self.labels[index])
                if label not in seen:
                    seen[label] = float(score)
                    if len(seen) == k:
                        break
            results.append([Match(label=label, score=score) for label, score in seen.items()])
        return results

    def decide(self, query: np.ndarray, *, threshold: float, k: int = 5) -> Decision:
        """Search one query and apply the known/unknown threshold to the best match."""
        top = self.search(query, k=k)[0]
        best = top[0] if top else None
        return Decision(best=best, known=best is not None and best.score >= threshold, top=tuple(top))

    def _candidates(self, queries: np.ndarray, fetch: int):
        """Per query: the rows holding the top ``fetch`` scores, and their exact float32 scores."""
        if self._half is None:
            for row in self.scores(queries):
                rows = np.argpartition(-row, fetch - 1)[:fetch] if fetch < len(self) else np.arange(len(self))
                yield rows, row[rows]
            return
        import torch

        for query in queries:
            rough = (self._half @ torch.from_numpy(query).to(torch.float16)).float().numpy()
            if self._offset:
                rough = rough - self.offsets
            if fetch < len(self):
                kth = np.partition(rough, len(rough) - fetch)[len(rough) - fetch]
                rows = np.flatnonzero(rough >= kth - HALF_MARGIN)
            else:
                rows = np.arange(len(self))
            exact = self.vectors[rows] @ query
            if self._offset:
                exact = exact - self.offsets[rows]
            if len(rows) > fetch:
                keep = np.argpartition(-exact, fetch - 1)[:fetch]
                rows, exact = rows[keep], exact[keep]
            yield rows, exact

    def _rows_by_label_map(self) -> dict[int, np.ndarray]:
        if not hasattr(self, "_rows_by_label"):
            order = np.argsort(self.labels, kind="stable")
            bounds = np.flatnonzero(np.diff(self.labels[order])) + 1
            self._rows_by_label = {int(self.labels[group[0]]): group for group in np.split(order, bounds)}
        return self._rows_by_label

    def _rows(self, label: int) -> np.ndarray:
        return self._rows_by_label_map()[label]

    def decide_burst(self, queries: np.ndarray, *, threshold: float, k: int = 5) -> Decision:
        """Several views of one face (a camera burst): a person's score is the mean of their scores
        over the views. Averaging scores lowers the spread of genuine and impostor scores alike, so
        the per-embedder threshold keeps its meaning (a renormalised mean vector would inflate every
        score). Known needs that mean at or over the threshold and the person ranked first in at
        least half of the views."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self) == 0 or queries.shape[0] == 0:
            return Decision(best=None, known=False, top=())
        per_view = self.search(queries, k=k)
        all_scores = self.scores(queries)
        candidates = {match.label for view in per_view for match in view}
        means = {label: float(all_scores[:, self._rows(label)].max(axis=1).mean()) for label in candidates}
        top = tuple(Match(label=label, score=score) for label, score in sorted(means.items(), key=lambda kv: -kv[1])[:k])
        best = top[0]
        firsts = sum(1 for view in per_view if view and view[0].label == best.label)
        return Decision(best=best, known=best.score >= threshold and firsts * 2 >= len(per_view), top=top)
