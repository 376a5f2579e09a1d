"""FacePipeline: the stages joined, for callers that want faces with their embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recognition.pipeline.detection import Face, MtcnnDetector
from recognition.pipeline.embedding import Embedder
from recognition.pipeline.errors import MultipleFacesError, NoFaceError

DOMINANCE = 4.0  # a face with under a quarter of the main face's area is background


@dataclass(frozen=True)
class EmbeddedFace:
    """A detected face, its aligned crop (RGB uint8) and its unit vector (float32, embedder.dim)."""

    face: Face
    crop: np.ndarray
    vector: np.ndarray


class FacePipeline:
    """detect -> align -> embed on RGB uint8 images."""

    def __init__(self, *, detector: MtcnnDetector, embedder: Embedder) -> None:
        self.detector = detector
        self.embedder = embedder

    def embed_all(self, image: np.ndarray, faces: list[Face] | None = None) -> list[EmbeddedFace]:
        """Every face in ``image`` (detected unless ``faces`` is given), embedded in one batch."""
        faces = self.detector.detect(image) if faces is None else faces
        vectors, crops = self.embedder.embed_faces(image, faces)
        return [EmbeddedFace(face=f, crop=c, vector=v) for f, c, v in zip(faces, crops, vectors)]

    def embed_single(self, image: np.ndarray) -> EmbeddedFace:
        """One person is expected (enrolment, verification); otherwise a typed error.

        Faces far smaller than the main one (a passer-by in the background: under
        1/DOMINANCE of its area) do not count; two comparable faces are ambiguous and refused.
        """
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError("No face was found in the image.")
        faces = sorted(faces, key=lambda f: f.width * f.height, reverse=True)
        main_area = faces[0].width * faces[0].height
        rivals = [f for f in faces[1:] if f.width * f.height * DOMINANCE > main_area]
        if rivals:
            raise MultipleFacesError(f"{len(rivals) + 1} faces were found; the photo must show one person.")
        return self.embed_all(image, faces[:1])[0]
