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


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Cohort:
    """The rows a gallery's hub offsets were measured against, fixed when the index was built:
    ``vectors`` (K, dim) with their ``labels`` and ``keys`` (the gallery rows' keys), and the
    ``centre`` (the mean raw offset) that was subtracted. ``exact``: the cohort is the whole gallery."""

    vectors: np.ndarray
    labels: np.ndarray
    keys: np.ndarray
    centre: float
    exact: bool

    def without(self, keys: np.ndarray) -> Cohort:
        """The cohort less the rows whose key is in ``keys`` (removed photos leave it too)."""
        keep = ~np.isin(self.keys, keys)
        if keep.all():
            return self
        return Cohort(vectors=self.vectors[keep], labels=self.labels[keep], keys=self.keys[keep],
                      centre=self.centre, exact=False)


@dataclass(frozen=True)
class CohortNorm:
    """Gallery-side score normalisation against hubs.

    Some gallery faces resemble many people (a "hub": a common face shape, a blurred or turned
    photo) and collect the best score of strangers and of other employees alike. Each gallery row
    gets an offset: ``weight`` x (its mean cosine to its ``neighbours`` most similar rows of other
    people - the gallery's average of that), and every score against the row is lowered by it.
    The offsets average zero, so the threshold keeps its meaning; the cohort is the gallery itself
    (what the deployment has) up to ``max_cohort`` rows, beyond that a seeded sample of
    ``max_cohort`` rows, and beyond ``max_rows`` rows a sample that shrinks so that computing the
    offsets costs what ``max_rows`` rows' did (n x K stays constant: 20k x 5000; 1000 rows at
    100k). A sampled cohort's neighbours are less close than the whole gallery's, so the offsets
    approximate the exact ones (bench/gallery_scale.py measures how well on 20k photos).
    On LFW's 1:N protocol (fused, 622 people) this raises the probes recognised at the 1%
    unknown-accept point from 81.0% to 86.8% with closed-set rank-1 unchanged (README).

    Rows added to a built index (``GalleryIndex.changed``) are measured against the index's fixed
    ``Cohort``; existing rows keep their offsets until the index is refitted (see ``refit_fraction``).
    """

    neighbours: int = 10
    weight: float = 0.5
    max_cohort: int = 5000
    max_rows: int = 20_000
    min_cohort: int = 500
    seed: int = 0
    # An index whose rows changed by more than this fraction since its offsets were fitted refits them.
    refit_fraction: float = 0.1

    def cohort_size(self, rows: int) -> int:
        """How many rows of a gallery of ``rows`` the offsets are measured against."""
        if rows <= self.max_rows:
            return min(rows, self.max_cohort)
        return min(rows, max(self.min_cohort, self.max_cohort * self.max_rows // rows))

    def fit(self, vectors: np.ndarray, labels: np.ndarray, keys: np.ndarray | None = None,
            ) -> tuple[Cohort | None, np.ndarray, Neighbours | None]:
        """(the cohort, each row's offset, each row's nearest cohort rows); no cohort (and zero
        offsets) when normalisation is off or the gallery holds too few people to judge."""
        labels = np.asarray(labels, dtype=np.int64)
        keys = np.arange(len(labels)) if keys is None else np.asarray(keys, dtype=np.int64)
        offsets = np.zeros(len(labels), dtype=np.float32)
        if self.weight == 0 or len(np.unique(labels)) <= self.neighbours:
            return None, offsets, None
        size = self.cohort_size(len(labels))
        if size < len(labels):
            rows = np.sort(np.random.default_rng(self.seed).choice(len(labels), size, replace=False))
            cohort = Cohort(vectors=np.ascontiguousarray(vectors[rows]), labels=labels[rows], keys=keys[rows],
                            centre=0.0, exact=False)
        else:  # the whole gallery (no copy: the rows are the index's own)
            cohort = Cohort(vectors=vectors, labels=labels, keys=keys, centre=0.0, exact=True)
        near = self.nearest(vectors, labels, cohort, with_keys=cohort.exact)
        cohort = self.centre(near, cohort)
        return cohort, self.centred(near.raw(), cohort), near

    def centre(self, near: Neighbours, cohort: Cohort) -> Cohort:
        """``cohort`` with its centre: the mean of the rows' finite raw offsets."""
        raw = near.raw()
        finite = np.isfinite(raw)  # a sampled cohort may hold too few other people for a row
        centre = float(raw[finite].mean()) if finite.any() else 0.0
        return Cohort(vectors=cohort.vectors, labels=cohort.labels, keys=cohort.keys, centre=centre, exact=cohort.exact)

    def nearest(self, vectors: np.ndarray, labels: np.ndarray, cohort: Cohort, *, with_keys: bool = True) -> Neighbours:
        """Each row's ``neighbours`` most similar cohort rows of other people (their cosines, -inf
        where the cohort holds too few, and their keys: -1 without ``with_keys``, which is about
        1.4x faster; only an exact cohort needs them). Blocked: ~64 MB of scores at a time."""
        k, width = self.neighbours, len(cohort.labels)
        values = np.full((len(labels), k), -np.inf, dtype=np.float32)
        keys = np.full((len(labels), k), -1, dtype=np.int64)
        if width == 0:
            return Neighbours(values, keys)
        block_rows = max(64, (1 << 24) // width)
        for start in range(0, len(labels), block_rows):
            stop = min(start + block_rows, len(labels))
            block = vectors[start:stop] @ cohort.vectors.T
            block[labels[start:stop, None] == cohort.labels[None, :]] = -np.inf  # not one's own photos
            if width > k and not with_keys:
                values[start:stop] = np.partition(block, width - k, axis=1)[:, width - k:]
                continue
            if width > k:
                columns = np.argpartition(block, width - k, axis=1)[:, width - k:]
            else:
                columns = np.broadcast_to(np.arange(width), (stop - start, width))
            values[start:stop, :columns.shape[1]] = np.take_along_axis(block, columns, axis=1)
            keys[start:stop, :columns.shape[1]] = cohort.keys[columns]
        return Neighbours(values, keys)

    def raw(self, vectors: np.ndarray, labels: np.ndarray, cohort: Cohort) -> np.ndarray:
        """Each row's mean cosine to its ``neighbours`` most similar cohort rows of other people
        (not finite where the cohort holds too few)."""
        return self.nearest(vectors, np.asarray(labels, dtype=np.int64), cohort).raw()

    def centred(self, raw: np.ndarray, cohort: Cohort) -> np.ndarray:
        """Offsets from raw values: ``weight`` x (raw - the cohort's centre); 0 where raw is not finite."""
        offsets = np.where(np.isfinite(raw), raw - cohort.centre, 0.0)
        return (self.weight * offsets).astype(np.float32)

    def offsets(self, vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each row's offset (see the class)."""
        return self.fit(vectors, np.asarray(labels, dtype=np.int64))[1]


@dataclass(frozen=True, eq=False)
class Neighbours:
    """Per gallery row: its ``values`` (rows, k) cosines to its nearest cohort rows of other people
    (-inf: none) and those rows' ``keys``; kept so an exact cohort can follow changes cheaply."""

    values: np.ndarray
    keys: np.ndarray

    def raw(self) -> np.ndarray:
        return self.values.mean(axis=1)

    def take(self, rows: np.ndarray) -> Neighbours:
        return Neighbours(self.values[rows], self.keys[rows])


class _Rows:
    """Append-only row storage shared by the successive snapshots of one index: a snapshot reads
    only its first ``n`` rows, so appending after the last one (``used``) never changes what an
    older snapshot sees. Capacity grows by half each time (amortised O(1) per row)."""

    def __init__(self, vectors: np.ndarray, *, extra: int = 0) -> None:
        n, dim = vectors.shape
        self.vectors = np.empty((n + max(extra, n // 2, 16), dim), dtype=np.float32)
        self.vectors[:n] = vectors
        self.used = n
        self.half = None  # torch float16 copy of the same capacity, made on demand

    @classmethod
    def compacted(cls, source: _Rows, rows: np.ndarray, *, extra: int) -> _Rows:
        """New storage holding ``source``'s ``rows`` (sorted row numbers), copied run by run (a few
        removed rows cost a few slice copies, not a gather), its float16 copy too."""
        kept = cls.__new__(cls)
        n, dim = len(rows), source.vectors.shape[1]
        kept.vectors = np.empty((n + max(extra, n // 2, 16), dim), dtype=np.float32)
        kept.used, kept.half = n, None
        if source.half is not None:
            import torch

            kept.half = torch.empty(kept.vectors.shape, dtype=torch.float16)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(np.arange(n), breaks) if n else []:
            start, stop, first = int(run[0]), int(run[-1]) + 1, int(rows[run[0]])
            kept.vectors[start:stop] = source.vectors[first:first + stop - start]
            if kept.half is not None:
                kept.half[start:stop] = source.half[first:first + stop - start]
        return kept

    def has_room(self, rows: int) -> bool:
        return self.used + rows <= self.vectors.shape[0]

    def append(self, vectors: np.ndarray) -> None:
        start, stop = self.used, self.used + len(vectors)
        self.vectors[start:stop] = vectors
        if self.half is not None:
            import torch

            self.half[start:stop] = torch.from_numpy(np.ascontiguousarray(vectors)).to(torch.float16)
        self.used = stop

    def make_half(self) -> None:
        import torch

        self.half = torch.empty(self.vectors.shape, dtype=torch.float16)
        self.half[: self.used] = torch.from_numpy(self.vectors[: self.used]).to(torch.float16)


class GalleryIndex:
    """Exact search over a gallery. A snapshot: ``changed`` returns a new index with rows added
    or removed (appends share storage with this one; this one never changes).

    ``half``: None chooses by size and by a quick measurement on this CPU; True / False force
    the float16 pre-scan on or off (the answers are the same either way). ``cohort``: scores are
    normalised against gallery hubs (``CohortNorm``); every score the index returns is then the
    cosine minus the row's offset. ``keys``: one int per row naming it for ``changed`` (a face
    id; default the row numbers)."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray | list[int], *, dim: int | None = None,
                 half: bool | None = None, cohort: CohortNorm | None = None,
                 keys: np.ndarray | list[int] | None = None) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) == 0:
            vectors = np.zeros((0, dim or 0), dtype=np.float32)
        else:
            vectors = l2_normalise(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if vectors.ndim != 2:
            raise ValueError(f"expected an (N, dim) matrix, got shape {vectors.shape}")
        if vectors.shape[0] != labels.shape[0]:
            raise ValueError(f"{vectors.shape[0]} vectors but {labels.shape[0]} labels")
        keys = np.arange(len(labels), dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        if keys.shape != labels.shape:
            raise ValueError(f"{keys.shape[0]} keys but {labels.shape[0]} labels")
        fitted, offsets, near = cohort.fit(vectors, labels, keys) if cohort and len(labels) else (None, None, None)
        self._set(_Rows(vectors), labels, keys, offsets, cohort=cohort, fitted=fitted, near=near, half=half, stale=0)

    def _set(self, rows: _Rows, labels: np.ndarray, keys: np.ndarray, offsets: np.ndarray | None, *,
             cohort: CohortNorm | None, fitted: Cohort | None, near: Neighbours | None, half: bool | None,
             stale: int) -> None:
        n = len(labels)
        self._store = rows
        self._near = near
        self.vectors = rows.vectors[:n]
        self.labels = labels
        self.keys = keys
        self.offsets = offsets if offsets is not None else np.zeros(n, np.float32)
        self._offset = bool(self.offsets.any())
        self.cohort, self.fitted, self._half_mode = cohort, fitted, half
        self.stale = stale  # rows added or removed since the offsets were fitted
        self._fitted_rows = n - stale if stale < n else n
        if half is None:
            half = self.vectors.size >= HALF_MIN_ELEMENTS and _half_is_faster(self.vectors)
        self._half = None
        if half and n:
            if rows.half is None:
                rows.make_half()
            self._half = rows.half[:n]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def changed(self, *, remove: np.ndarray | list[int] | set[int] = (), vectors: np.ndarray | None = None,
                labels: np.ndarray | list[int] | None = None, keys: np.ndarray | list[int] | None = None,
                ) -> GalleryIndex:
        """A new index: this one less the rows whose key is in ``remove``, plus ``vectors`` with
        their ``labels`` and ``keys`` appended. Appending costs O(rows added) (the storage is
        shared); a removal copies the remaining rows once. Hub offsets: while the cohort is the
        whole gallery (up to ``CohortNorm.max_cohort`` rows) each row's nearest neighbours follow
        the change in O(rows x changes), so the answers are exactly a rebuild's; beyond that new
        rows are measured against the fixed sampled cohort and the other rows keep theirs until
        ``stale`` passes ``refit_fraction`` of the gallery, when all are refitted."""
        remove = np.fromiter((int(k) for k in remove), dtype=np.int64)
        labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        dim = self.vectors.shape[1]
        vectors = (l2_normalise(np.atleast_2d(np.asarray(vectors, dtype=np.float32))) if len(labels)
                   else np.zeros((0, dim), dtype=np.float32))
        keys = np.asarray(keys if keys is not None else np.arange(len(labels)) + (int(self.keys.max()) + 1 if len(self) else 0),
                          dtype=np.int64)
        if vectors.shape[0] != len(labels) or keys.shape != labels.shape or (len(labels) and vectors.shape[1] != dim):
            raise ValueError(f"rows to add: {vectors.shape} vectors, {len(labels)} labels, {len(keys)} keys")
        keep = ~np.isin(self.keys, remove) if len(remove) else None
        if keep is not None and keep.all():
            keep = None
        if keep is None and not len(labels):
            return self
        if not len(self) or (keep is not None and not keep.any()):  # nothing kept: a new index (its dim may be new too)
            return GalleryIndex(vectors, labels, dim=dim, half=self._half_mode, cohort=self.cohort, keys=keys)
        old_labels, old_keys, old_offsets = self.labels, self.keys, self.offsets
        rows = self._store
        if keep is not None:  # compact the remaining rows into new storage
            old_labels, old_keys, old_offsets = old_labels[keep], old_keys[keep], old_offsets[keep]
            rows = _Rows.compacted(self._store, np.flatnonzero(keep), extra=len(labels))
        elif not (rows.used == len(self) and rows.has_room(len(labels))):
            # full, or a newer snapshot already appended to this storage: copy into a larger one
            rows = _Rows(self.vectors, extra=max(len(labels), len(self) // 2))
            if self._store.half is not None:
                rows.make_half()
        rows.append(vectors)
        all_labels = np.concatenate([old_labels, labels])
        all_keys = np.concatenate([old_keys, keys])
        n = len(all_labels)
        stale = self.stale + len(labels) + (len(self) - len(old_labels))
        fitted, offsets, near = self.fitted, None, None
        cohort = self.cohort
        if cohort is not None and n:
            removed = self.keys[~keep] if keep is not None else np.zeros(0, np.int64)
            exact = cohort.cohort_size(n) >= n
            if (exact and fitted is not None and fitted.exact and self._near is not None
                    and len(np.unique(all_labels)) > cohort.neighbours):
                fitted, offsets, near = self._follow_exact(rows.vectors[:n], all_labels, all_keys, keep, removed,
                                                           vectors, labels, keys)
                stale = 0
            elif exact or fitted is None or stale > cohort.refit_fraction * max(self._fitted_rows, 1):
                fitted, offsets, near = cohort.fit(rows.vectors[:n], all_labels, all_keys)
                stale = 0
            else:  # a fixed sample: new rows measured against it, the others keep their offsets
                fitted = fitted.without(removed) if len(removed) else fitted
                added = cohort.nearest(vectors, labels, fitted, with_keys=False)
                kept = self._near.take(keep) if keep is not None else self._near
                near = Neighbours(np.vstack([kept.values, added.values]), np.vstack([kept.keys, added.keys]))
                offsets = np.concatenate([old_offsets, cohort.centred(added.raw(), fitted)])
        index = object.__new__(GalleryIndex)
        index._set(rows, all_labels, all_keys, offsets, cohort=cohort, fitted=fitted, near=near, half=self._half_mode,
                   stale=stale)
        return index

    def _follow_exact(self, gallery: np.ndarray, labels: np.ndarray, keys: np.ndarray, keep: np.ndarray | None,
                      removed: np.ndarray, added: np.ndarray, added_labels: np.ndarray, added_keys: np.ndarray,
                      ) -> tuple[Cohort, np.ndarray, Neighbours]:
        """Offsets against the whole (changed) gallery, as a fit would give, in O(rows x changes):
        the rows whose neighbours included a removed row are measured again, the others merge
        the added rows into their neighbours; the centre is recomputed."""
        cohort = self.cohort
        whole = Cohort(vectors=gallery, labels=labels, keys=keys, centre=0.0, exact=True)
        near = self._near.take(keep) if keep is not None else self._near
        values, near_keys = near.values.copy(), near.keys.copy()
        old = len(values)
        redo = np.isin(near_keys, removed).any(axis=1) if len(removed) else np.zeros(old, dtype=bool)
        if redo.any():
            again = cohort.nearest(gallery[:old][redo], labels[:old][redo], whole)
            values[redo], near_keys[redo] = again.values, again.keys
        if len(added_labels):
            merge = ~redo
            scores = gallery[:old][merge] @ added.T
            scores[labels[:old][merge, None] == added_labels[None, :]] = -np.inf
            both = np.hstack([values[merge], scores])
            both_keys = np.hstack([near_keys[merge], np.broadcast_to(added_keys, scores.shape)])
            k = cohort.neighbours
            columns = np.argpartition(both, both.shape[1] - k, axis=1)[:, both.shape[1] - k:]
            values[merge] = np.take_along_axis(both, columns, axis=1)
            near_keys[merge] = np.take_along_axis(both_keys, columns, axis=1)
            new = cohort.nearest(added, added_labels, whole)
            values, near_keys = np.vstack([values, new.values]), np.vstack([near_keys, new.keys])
        near = Neighbours(values, near_keys)
        fitted = cohort.centre(near, whole)
        return fitted, cohort.centred(near.raw(), fitted), near

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
