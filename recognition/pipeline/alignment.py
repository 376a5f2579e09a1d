"""Alignment: a detected face -> the canonical crop an embedder was trained on.

Two crops exist:
- dlib's 150x150 "face chip": dlib's 5-point shape predictor, seeded with the detector's box,
  finds eye corners and nose, and ``dlib.get_face_chip`` warps them onto dlib's template;
- FaceNet's 160x160 crop: the detector box plus a margin, resized (how facenet-pytorch's own
  ``extract_face`` and Sandberg's training data were cropped).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from recognition.pipeline.detection import Face
from recognition.pipeline.models import dlib_model_path


class DlibChipAligner:
    """Face -> dlib face chip: RGB uint8 (size, size, 3); default 150x150 with padding 0.25."""

    name = "dlib-sp5"

    def __init__(self, *, size: int = 150, padding: float = 0.25, predictor_path: Path | None = None) -> None:
        import dlib

        self._dlib = dlib
        self.size = size
        self.padding = padding
        self._predictor = dlib.shape_predictor(str(predictor_path or dlib_model_path("shape_predictor_5_face_landmarks.dat")))
        self._lock = threading.Lock()

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        x1, y1, x2, y2 = face.box
        rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
        with self._lock:
            shape = self._predictor(image, rect)
        return np.ascontiguousarray(self._dlib.get_face_chip(image, shape, size=self.size, padding=self.padding))


# Where MTCNN's 5 landmarks (eyes, nose, mouth corners) fall in dlib's 150x150 chip (padding
# 0.25): the median over 71 non-LFW photos of MTCNN's points mapped through the sp5 chip transform.
DLIB_CHIP_TEMPLATE_150 = np.array(
    [[46.84, 45.49], [101.86, 45.53], [74.12, 78.13], [49.80, 101.70], [100.34, 100.89]], dtype=np.float32
)


class SimilarityAligner:
    """Face -> (size, size) crop by the similarity transform (rotation, scale, shift) that best maps
    the detector's 5 landmarks onto ``template``. No second landmark model is run."""

    name = "mtcnn5-similarity"

    def __init__(self, *, size: int = 150, template: np.ndarray = DLIB_CHIP_TEMPLATE_150) -> None:
        self.size = size
        self.template = template.astype(np.float32) * (size / 150.0)

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        return similarity_align(image, face.landmarks, self.template, self.size)


def similarity_align(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Pure function: warp ``image`` so ``landmarks`` (5, 2) land on ``template`` (least squares)."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), template.astype(np.float32), method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("the landmarks do not define a similarity transform")
    return np.ascontiguousarray(
        cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    )


class MarginCropAligner:
    """Face -> square crop of the box plus ``margin`` pixels (in output scale) each side, resized.

    Matches facenet-pytorch's ``extract_face``: the margin is given for the output size and
    scaled to the box, the crop is clipped to the image, then resized to (size, size).
    """

    name = "margin-crop"

    def __init__(self, *, size: int = 160, margin: int = 32) -> None:
        self.size = size
        self.margin = margin

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        return margin_crop(image, face.box, size=self.size, margin=self.margin)


def margin_crop(
    image: np.ndarray, box: tuple[float, float, float, float], *, size: int, margin: int
) -> np.ndarray:
    """Pure function: crop ``box`` grown by ``margin`` (output pixels) from ``image``, resize to size."""
    x1, y1, x2, y2 = box
    grow_x = margin * (x2 - x1) / (size - margin)
    grow_y = margin * (y2 - y1) / (size - margin)
    height, width = image.shape[:2]
    left = int(max(x1 - grow_x / 2, 0))
    top = int(max(y1 - grow_y / 2, 0))
    right = int(min(x2 + grow_x / 2, width))
    bottom = int(min(y2 + grow_y / 2, height))
    if right <= left or bottom <= top:
        raise ValueError(f"face box {box} lies outside the image {width}x{height}")
    crop = image[top:bottom, left:right]
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
