"""Reads of the face gallery. The in-memory index is rebuilt only when the gallery changed."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recognition.engine import cohort_norm, get_pipeline
from recognition.models import FaceImage, GalleryState
from recognition.pipeline.matching import CohortNorm, GalleryIndex


def gallery_version() -> tuple[str, int]:
    """(epoch, version) of the gallery: changes whenever any face is added or removed."""
    state = GalleryState.objects.filter(pk=1).values_list("epoch", "version").first()
    return (state[0], int(state[1])) if state else ("", 0)


@dataclass(frozen=True)
class _LoadedIndex:
    version: tuple[str, int]
    embedder_key: str
    cohort: CohortNorm | None
    index: GalleryIndex


_lock = threading.Lock()
_loaded: _LoadedIndex | None = None


def gallery_index() -> GalleryIndex:
    """The gallery of active employees for the current embedder, labelled by employee id.

    Costs one small query when nothing changed; reloads every embedding only after a change.
    """
    global _loaded
    embedder = get_pipeline().embedder
    version = gallery_version()
    cohort = cohort_norm()
    loaded = _loaded
    if loaded is not None and (loaded.version, loaded.embedder_key, loaded.cohort) == (version, embedder.key, cohort):
        return loaded.index
    with _lock:
        loaded = _loaded  # another thread may have rebuilt it while this one waited
        if loaded is not None and (loaded.version, loaded.embedder_key, loaded.cohort) == (version, embedder.key, cohort):
            return loaded.index
        rows = list(
            FaceImage.objects.filter(
                employee__is_active=True, embedder=embedder.name, embedder_version=embedder.version
            ).values_list("employee_id", "embedding")
        )
        vectors = np.array([np.frombuffer(bytes(blob), dtype=np.float32) for _, blob in rows], dtype=np.float32)
        index = GalleryIndex(vectors, [employee_id for employee_id, _ in rows], dim=embedder.dim, cohort=cohort)
        _loaded = _LoadedIndex(version=version, embedder_key=embedder.key, cohort=cohort, index=index)
        return index
