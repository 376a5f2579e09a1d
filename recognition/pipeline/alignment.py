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
