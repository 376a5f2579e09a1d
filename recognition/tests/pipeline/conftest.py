from __future__ import annotations

import pytest

from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.embedding import DlibEmbedder
from recognition.pipeline.pipeline import FacePipeline


@pytest.fixture(scope="session")
def detector() -> MtcnnDetector:
    return MtcnnDetector(min_face_size=40)


@pytest.fixture(scope="session")
def dlib_embedder() -> DlibEmbedder:
    return DlibEmbedder()


@pytest.fixture(scope="session")
def pipeline(detector: MtcnnDetector, dlib_embedder: DlibEmbedder) -> FacePipeline:
    return FacePipeline(detector=detector, embedder=dlib_embedder)
