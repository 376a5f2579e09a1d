"""Harvest, during the day: what a check-in leaves for the nightly learning (recognition/learning.py).

The check-in path (attendance.services) asks ``burst_safety`` whether its decision was safe and,
once the check-in is committed as accepted, stores the views as a ``LearningCandidate``. Nothing
here ever takes a label from a person: the system's own, safe decision is the label.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from portal.models import Employee
from recognition.models import LearningCandidate, StrangerSample
from recognition.pipeline.matching import Decision


@dataclass(frozen=True)
class SafeBurst:
    """The views of a burst whose decision was safe: base-embedder vectors (views x dim, float32),
    the middle view's aligned crop (RGB uint8), the mean score and the gap to the second person."""

    vectors: np.ndarray
    crop: np.ndarray | None
    score: float
    gap: float


def burst_safety(index: object, vectors: np.ndarray, decision: Decision, *, threshold: float) -> tuple[float, float] | None:
    """(score, gap) when the burst's decision is safe to learn from, else None: recognised with a
    mean score at least ROLLCALL_LEARN_MARGIN above the threshold, at least ROLLCALL_LEARN_GAP above
    the second person, and every view's best match the same person."""
    if not settings.ROLLCALL_LEARN or not decision.known or decision.best is None or len(vectors) == 0:
        return None
    best = decision.best
    second = decision.top[1].score if len(decision.top) > 1 else -1.0
    if best.score < threshold + settings.ROLLCALL_LEARN_MARGIN or best.score - second < settings.ROLLCALL_LEARN_GAP:
        return None
    per_view = index.search(vectors, k=1)
    if any(not view or view[0].label != best.label for view in per_view):
        return None
    return float(best.score), float(best.score - second)


def aligned_crop(embedder: object, image: np.ndarray, face: object) -> np.ndarray | None:
    """The embedder's aligned crop of ``face`` (a fused embedder: its first part's)."""
    while not hasattr(embedder, "crop") and hasattr(embedder, "parts"):
        embedder = embedder.parts[0][0]
    return embedder.crop(image, face) if hasattr(embedder, "crop") else None


def learning_candidate_record(*, employee: Employee, burst: SafeBurst, at: dt.datetime, source: str,
                              device_id: int | None, log_id: int | None) -> LearningCandidate | None:
    """Keep a safe, accepted check-in's views (call inside the check-in's transaction). Nothing is
    kept for an employee without biometric consent. The crop file is removed if the transaction
    rolls back (see ``forget_files``)."""
    from recognition.engine import get_pipeline
    from recognition.services import _png

    if employee.biometric_consent_at is None or burst.crop is None:
        return None
    embedder = get_pipeline().embedder
    vectors = np.ascontiguousarray(burst.vectors, dtype=np.float32)
    candidate = LearningCandidate(
        employee=employee, captured_at=at, source=source[:40], device_id=device_id, log_id=log_id,
        vectors=vectors.tobytes(), views=vectors.shape[0], dim=vectors.shape[1], embedder=embedder.name,
        embedder_version=embedder.version, score=burst.score, gap=burst.gap)
    candidate.crop.save("crop.png", ContentFile(_png(burst.crop)), save=False)
    candidate.save()
    return candidate


def clear_stranger(closest: float | None, *, threshold: float) -> bool:
    """Whether a check-in answered "unknown" whose best score was ``closest`` may be kept as one of
    the gate's strangers: only when that score is at least ROLLCALL_LEARN_STRANGER_GAP below the
    threshold. A near miss is ambiguous, and mostly it is an enrolled employee who was simply not
    recognised (a turned head, poor light): on the LFW site simulation (bench/adaptation.py) 151 of
    668 unknown check-ins were employees, most of them within 0.03 of the threshold, and once the
    learned templates recognised them they stood at the top of the "strangers", raising the
    candidate's re-calibrated threshold from 0.914 to 0.950, so every night's helpful templates were
    refused. With the default 0.03, 10 employees remain among 317 kept samples. The band cuts the
    real strangers' top band too; the gate makes up for it with the held-out captures left one out
    (recognition.learning_gate). With no closest score (an empty gallery) the face is kept: nobody
    enrolled can be near it."""
    return closest is None or closest < threshold - settings.ROLLCALL_LEARN_STRANGER_GAP


def stranger_sample_record(*, vectors: np.ndarray, at: dt.datetime) -> StrangerSample | None:
    """Keep the views of a check-in answered "unknown" (vectors only: no image, no identity) for the
    gate's strangers (the check-in path keeps only ``clear_stranger`` ones); the oldest beyond
    ROLLCALL_LEARN_STRANGERS_KEPT go."""
    from recognition.engine import get_pipeline

    if not settings.ROLLCALL_LEARN or len(vectors) == 0:
        return None
    embedder = get_pipeline().embedder
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with transaction.atomic():
        sample = StrangerSample.objects.create(
            vectors=vectors.tobytes(), views=vectors.shape[0], dim=vectors.shape[1], embedder=embedder.name,
            embedder_version=embedder.version, captured_at=at)
        keep = settings.ROLLCALL_LEARN_STRANGERS_KEPT
        old = list(StrangerSample.objects.order_by("-captured_at", "-pk").values_list("pk", flat=True)[keep:keep + 1000])
        if old:
            StrangerSample.objects.filter(pk__in=old).delete()
    return sample


def forget_files(candidate: LearningCandidate | None) -> None:
    """Remove a candidate's crop file (its row was rolled back or deleted)."""
    if candidate is not None and candidate.crop and candidate.crop.name:
        candidate.crop.storage.delete(candidate.crop.name)
