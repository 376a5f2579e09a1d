"""The process-wide recognition engine built from settings (one per web or worker process)."""

from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.embedding import OnnxEmbedder, create_embedder
from recognition.pipeline.pipeline import FacePipeline

if TYPE_CHECKING:
    from recognition.pipeline.liveness import LivenessChecker
    from recognition.pipeline.matching import CohortNorm


# Building a model takes seconds: overlapping first requests (Daphne runs each in its own thread)
# must wait for the one build instead of each loading the weights again.
_build_lock = threading.RLock()


def _built_once(build):  # noqa: ANN001, ANN202 - a zero-argument builder, cached under the lock
    cached = functools.lru_cache(maxsize=1)(build)

    @functools.wraps(build)
    def get():  # noqa: ANN202
        if cached.cache_info().currsize:
            return cached()
        with _build_lock:
            return cached()

    get.cache_clear = cached.cache_clear
    get.cache_info = cached.cache_info
    return get


@_built_once
def get_pipeline() -> FacePipeline:
    """Build (once) the detector and the embedder named by ROLLCALL_EMBEDDER."""
    import torch

    if settings.ROLLCALL_TORCH_THREADS:
        torch.set_num_threads(settings.ROLLCALL_TORCH_THREADS)
    # One knob for a process's inference threads: a one-thread worker holds ONNX Runtime to one too.
    OnnxEmbedder.default_threads = settings.ROLLCALL_ONNX_THREADS or settings.ROLLCALL_TORCH_THREADS
    detector = MtcnnDetector(min_face_size=settings.ROLLCALL_DETECTOR_MIN_FACE, device=settings.ROLLCALL_DEVICE)
    embedder = create_embedder(settings.ROLLCALL_EMBEDDER, **settings.ROLLCALL_EMBEDDER_OPTIONS)
    _remember_identity(embedder.name, embedder.version, embedder.threshold)
    return FacePipeline(detector=detector, embedder=embedder)


@functools.cache
def _code_fingerprint() -> str:
    """The embedders' code (their versions are constants there): a release that changes a version
    string changes the identity's cache key, so no process reads a stale identity."""
    from recognition.pipeline import embedding

    return hashlib.sha256(Path(embedding.__file__).read_bytes()).hexdigest()[:16]


def _identity_key() -> str:
    options = repr(sorted(settings.ROLLCALL_EMBEDDER_OPTIONS.items()))
    seed = f"{settings.ROLLCALL_EMBEDDER}|{options}|{_code_fingerprint()}"
    return "rollcall:embedder-identity:" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def _remember_identity(name: str, version: str, threshold: float) -> None:
    from django.core.cache import cache

    from portal.throttling import CACHE_DOWN

    try:
        cache.set(_identity_key(), (name, version, threshold), None)
    except CACHE_DOWN:
        pass  # pages then build the pipeline themselves (embedder_identity)


def embedder_identity() -> tuple[str, str, float]:
    """The (name, version, own threshold) of the embedder ROLLCALL_EMBEDDER builds. Pages that only
    need to know which model and gallery are active (the face gallery, the gallery map) read it
    from the shared cache, where any process that built the pipeline left it, instead of loading
    the networks into a web process; only when no process did yet is the pipeline built here."""
    from django.core.cache import cache

    from portal.throttling import CACHE_DOWN

    if not get_pipeline.cache_info().currsize:
        try:
            known = cache.get(_identity_key())
        except CACHE_DOWN:
            known = None
        if known is not None:
            name, version, threshold = known
            return name, version, threshold
    embedder = get_pipeline().embedder
    return embedder.name, embedder.version, embedder.threshold


@_built_once
def get_liveness_checker() -> LivenessChecker:
    """Blink + motion liveness sharing the pipeline's detector (the 68-point model loads once)."""
    from recognition.pipeline.liveness import LivenessChecker

    return LivenessChecker(detector=get_pipeline().detector)


def cohort_norm() -> CohortNorm | None:
    """The gallery index's normalisation against hub faces, from settings (None: off)."""
    from recognition.pipeline.matching import CohortNorm

    if settings.ROLLCALL_COHORT_WEIGHT <= 0:
        return None
    return CohortNorm(neighbours=settings.ROLLCALL_COHORT_NEIGHBOURS, weight=settings.ROLLCALL_COHORT_WEIGHT,
                      max_cohort=settings.ROLLCALL_COHORT_SAMPLE, max_rows=settings.ROLLCALL_COHORT_MAX_ROWS)


def match_threshold() -> float:
    """Cosine similarity at or above which a face is recognised as a gallery person."""
    from recognition.selectors import learned_threshold

    return threshold_for(learned_threshold())


def threshold_for(learned: float | None) -> float:
    """The match threshold given the threshold a learned model version was calibrated to (None:
    the embedder's own): ROLLCALL_MATCH_THRESHOLD if set, else the learned one, never below the
    embedder's."""
    if settings.ROLLCALL_MATCH_THRESHOLD is not None:
        return settings.ROLLCALL_MATCH_THRESHOLD
    default = embedder_identity()[2]
    return max(default, learned) if learned is not None else default
