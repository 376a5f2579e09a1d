"""Reads of the face gallery. The in-memory index follows the gallery's change journal (or is rebuilt)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.db import models

from recognition.engine import cohort_norm, embedder_identity, get_pipeline
from recognition.models import FaceImage, GalleryChange, GalleryState, ModelVersion
from recognition.pipeline.matching import CohortNorm, Decision, GalleryIndex, Match

logger = logging.getLogger(__name__)


def gallery_version() -> tuple[str, int]:
    """(epoch, version) of the gallery: changes whenever any face is added or removed."""
    state = GalleryState.objects.filter(pk=1).values_list("epoch", "version").first()
    return (state[0], int(state[1])) if state else ("", 0)


class Head(Protocol):
    """A projection head over the base embedder's vectors (recognition.pipeline.finetune.ProjectionHead)."""

    def apply(self, vectors: np.ndarray) -> np.ndarray: ...


class ProjectedIndex:
    """A gallery index under a model version's projection head: the gallery's base vectors and
    every probe go through the same head, inside the same object, so vectors of two model
    versions are never compared. Answers as GalleryIndex does (search, decide, decide_burst,
    scores, score_label); other attributes are the projected index's."""

    def __init__(self, vectors: np.ndarray, labels: list[int] | np.ndarray, *, head: Head, dim: int,
                 cohort: CohortNorm | None, keys: list[int] | np.ndarray | None = None) -> None:
        self.head = head
        projected = head.apply(np.asarray(vectors, dtype=np.float32)) if len(labels) else vectors
        self.inner = GalleryIndex(projected, labels, dim=dim, cohort=cohort, keys=keys)

    def _project(self, queries: np.ndarray) -> np.ndarray:
        return self.head.apply(np.atleast_2d(np.asarray(queries, dtype=np.float32)))

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        return self.inner.scores(self._project(queries))

    def score_label(self, query: np.ndarray, label: int) -> float | None:
        return self.inner.score_label(self._project(query)[0], label)

    def search(self, queries: np.ndarray, *, k: int = 5) -> list[list[Match]]:
        return self.inner.search(self._project(queries), k=k)

    def decide(self, query: np.ndarray, *, threshold: float, k: int = 5) -> Decision:
        return self.inner.decide(self._project(query)[0], threshold=threshold, k=k)

    def decide_burst(self, queries: np.ndarray, *, threshold: float, k: int = 5) -> Decision:
        return self.inner.decide_burst(self._project(queries), threshold=threshold, k=k)

    def changed(self, *, remove: np.ndarray | list[int] | set[int] = (), vectors: np.ndarray | None = None,
                labels: list[int] | np.ndarray | None = None, keys: list[int] | np.ndarray | None = None,
                ) -> ProjectedIndex:
        """As GalleryIndex.changed, with the added base vectors projected by the same head."""
        if labels is not None and len(labels):
            vectors = self.head.apply(np.asarray(vectors, dtype=np.float32))
        index = object.__new__(ProjectedIndex)
        index.head = self.head
        index.inner = self.inner.changed(remove=remove, vectors=vectors, labels=labels, keys=keys)
        return index


def build_index(vectors: np.ndarray, labels: list[int] | np.ndarray, *, dim: int, cohort: CohortNorm | None,
                head: Head | None = None, keys: list[int] | np.ndarray | None = None) -> GalleryIndex | ProjectedIndex:
    """The index recognition uses for these base vectors under ``head`` (the learning gate builds
    its candidates with this too, so it measures exactly what recognition would answer).
    ``keys``: the rows' face ids (for later incremental changes)."""
    if head is None:
        return GalleryIndex(vectors, labels, dim=dim, cohort=cohort, keys=keys)
    return ProjectedIndex(vectors, labels, head=head, dim=dim, cohort=cohort, keys=keys)


def load_head(path: str) -> Head | None:
    """The projection head stored at ``path`` (empty: none)."""
    if not path:
        return None
    from recognition.pipeline.finetune import ProjectionHead  # only versions with a head need it

    return ProjectionHead.load(Path(path))


def active_model_version() -> ModelVersion | None:
    """The active model version for the current embedder (None: the base embedder alone)."""
    name, version, _ = embedder_identity()
    return ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE, embedder=name, embedder_version=version).first()


def learned_photos_in_use() -> set[int]:
    """The ids of the learned photos the active model version holds (recognition uses them; other
    learned photos are only kept for a rollback)."""
    active = active_model_version()
    return set(active.learned_faces.values_list("pk", flat=True)) if active is not None else set()


def gallery_base_vectors(*, version: ModelVersion | None, employees: Collection[int] | None = None,
                         ) -> tuple[np.ndarray, list[int], list[int]]:
    """(base vectors, employee ids, face ids) of the gallery under ``version``: the enrolled photos
    of active employees for the current embedder, plus the learned photos that version holds
    (only those of ``employees`` when given)."""
    embedder = get_pipeline().embedder
    faces = FaceImage.objects.filter(employee__is_active=True, embedder=embedder.name, embedder_version=embedder.version)
    if employees is not None:
        faces = faces.filter(employee_id__in=list(employees))
    learned = FaceImage.Source.LEARNED
    if version is None:
        faces = faces.exclude(source=learned)
    else:
        faces = faces.exclude(models.Q(source=learned) & ~models.Q(model_versions=version))
    rows = list(faces.order_by("pk").values_list("employee_id", "embedding", "pk"))
    dim = embedder.dim
    vectors = (np.array([np.frombuffer(bytes(blob), dtype=np.float32) for _, blob, _ in rows], dtype=np.float32)
               if rows else np.zeros((0, dim), dtype=np.float32))
    return vectors, [employee_id for employee_id, _, _ in rows], [pk for _, _, pk in rows]


@dataclass(frozen=True)
class _LoadedIndex:
    version: tuple[str, int]
    embedder_key: str
    cohort: CohortNorm | None
    index: GalleryIndex | ProjectedIndex
    model_version_id: int | None = None
    threshold: float | None = None
    model: ModelVersion | None = None


_lock = threading.Lock()
_loaded: _LoadedIndex | None = None
# How this process brought its index up to date (full: every embedding read again; incremental:
# only the journal's changed employees). Read by tests and bench/gallery_scale.py.
index_loads = {"full": 0, "incremental": 0}


def gallery_index() -> GalleryIndex | ProjectedIndex:
    """The gallery of active employees for the current embedder, labelled by employee id, under
    the active model version (its learned photos and projection head; probes get the same head).

    Costs one small query when nothing changed. After a change it reads the change journal
    (GalleryChange) since its version and reads again only the photos of the employees named
    there; it rebuilds from every embedding when the journal does not reach back that far, names
    a reload (a model version switch) or too many employees, or the epoch, embedder or hub
    settings changed.
    """
    return _current().index


def gallery_index_and_threshold() -> tuple[GalleryIndex | ProjectedIndex, float]:
    """The index and the match threshold it was calibrated with, from one load: a model version
    switch by another thread between two reads can never pair one version's index with another's
    threshold."""
    from recognition.engine import threshold_for

    loaded = _current()
    return loaded.index, threshold_for(loaded.threshold)


def _current() -> _LoadedIndex:
    """The loaded index, brought up to date (see gallery_index)."""
    global _loaded
    embedder = get_pipeline().embedder
    version = gallery_version()
    cohort = cohort_norm()
    loaded = _loaded
    if loaded is not None and (loaded.version, loaded.embedder_key, loaded.cohort) == (version, embedder.key, cohort):
        return loaded
    with _lock:
        loaded = _loaded  # another thread may have brought it up to date while this one waited
        if loaded is not None and (loaded.version, loaded.embedder_key, loaded.cohort) == (version, embedder.key, cohort):
            return loaded
        if (loaded is not None and (loaded.version[0], loaded.embedder_key, loaded.cohort) == (version[0], embedder.key, cohort)
                and loaded.version[1] < version[1]):
            index = _apply_journal(loaded, upto=version[1])
            if index is not None:
                index_loads["incremental"] += 1
                _loaded = _LoadedIndex(version=version, embedder_key=loaded.embedder_key, cohort=cohort, index=index,
                                       model_version_id=loaded.model_version_id, threshold=loaded.threshold,
                                       model=loaded.model)
                return _loaded
        model = active_model_version()
        vectors, labels, keys = gallery_base_vectors(version=model)
        head = None
        if model is not None and model.head_path:
            try:
                head = load_head(model.head_path)
            except Exception:  # a missing or broken head file: recognise with the base embedder
                logger.exception("model version %s: its head %s could not be loaded", model.version, model.head_path)
        index = build_index(vectors, labels, dim=embedder.dim, cohort=cohort, head=head, keys=keys)
        index_loads["full"] += 1
        _loaded = _LoadedIndex(version=version, embedder_key=embedder.key, cohort=cohort, index=index,
                               model_version_id=model.pk if model else None,
                               threshold=model.threshold if model else None, model=model)
        return _loaded


def _apply_journal(loaded: _LoadedIndex, *, upto: int) -> GalleryIndex | ProjectedIndex | None:
    """``loaded``'s index with the journal's changes after its version up to ``upto`` applied, or
    None when only a rebuild will do. Each named employee's rows are replaced by their photos as
    the database holds them now: applying a change twice, or seeing a later one early, is harmless
    (the later change is applied again when its version comes)."""
    since = loaded.version[1]
    changes = list(GalleryChange.objects.filter(version__gt=since, version__lte=upto).values_list("version", "op", "employee_id"))
    if len({v for v, _, _ in changes}) != upto - since:
        return None  # pruned, or written by an older release: the journal does not cover the gap
    if any(op == GalleryChange.Op.RELOAD for _, op, _ in changes):
        return None
    employees = {int(employee) for _, _, employee in changes if employee is not None}
    if len(employees) > settings.ROLLCALL_GALLERY_INCREMENTAL_MAX:
        return None
    vectors, labels, keys = gallery_base_vectors(version=loaded.model, employees=employees)
    index = loaded.index
    current = np.isin(index.labels, list(employees))
    held = set(index.keys[current].tolist())
    fresh = [row for row, key in enumerate(keys) if key not in held]
    gone = held - set(keys)
    return index.changed(remove=gone, vectors=vectors[fresh] if fresh else None,
                         labels=[labels[row] for row in fresh], keys=[keys[row] for row in fresh])


def learned_threshold() -> float | None:
    """The threshold the active model version was calibrated to (None: the embedder's own), as
    loaded with the current index (read after gallery_index(), so both belong to one version)."""
    loaded = _loaded
    return loaded.threshold if loaded is not None else None
