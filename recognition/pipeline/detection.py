"""Face detection: MTCNN (facenet-pytorch; its weights ship inside the wheel).

Input: RGB uint8 (H, W, 3) of any size. Output: every face with its box, score and 5 landmarks,
in the input image's pixel coordinates. Large frames are downscaled for detection, never cropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face.

    box: (x1, y1, x2, y2) float pixels. landmarks: float32 (5, 2) as (x, y) for left eye,
    right eye, nose, left mouth corner, right mouth corner (image left/right).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels."""
        return min(self.width, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


class MtcnnDetector:
    """MTCNN from facenet-pytorch, CPU or CUDA.

    min_face_size is in pixels of the (possibly downscaled) detection frame; frames whose longer
    side exceeds max_side are resized to max_side first. Faces scoring below min_score are dropped.
    """

    name = "mtcnn"

    def __init__(
        self,
        *,
        min_face_size: int = 40,
        max_side: int = 1280,
        min_score: float = 0.9,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        device: str = "cpu",
    ) -> None:
        from facenet_pytorch import MTCNN

        self.max_side = max_side
        self.min_score = min_score
        self.min_face_size = min_face_size
        self._mtcnn = MTCNN(
            keep_all=True,
            min_face_size=min_face_size,
            thresholds=list(thresholds),
            post_process=False,
            device=device,
        )
        # facenet-pytorch's MTCNN is not documented as thread-safe; Channels/Celery threads share one.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return faces sorted by score (best first); an empty list when there are none."""
        _check_rgb(image)
        if min(image.shape[:2]) < self.min_face_size:
            # No face of the minimum size fits, and MTCNN's image pyramid would be empty (it raises).
            return []
        scale = 1.0
        frame = image
        longest = max(image.shape[:2])
        if longest > self.max_side:
            scale = self.max_side / longest
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            frame = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            boxes, probs, points = self._mtcnn.detect(frame, landmarks=True)
        if boxes is None:
            return []
        boxes = np.asarray(boxes, dtype=np.float64) / scale
        probs = np.asarray(probs, dtype=np.float64)
        points = np.asarray(points, dtype=np.float64) / scale
        faces = [
            Face(
                box=_clip_box(box, image.shape),
                score=float(prob),
                landmarks=pts.astype(np.float32),
            )
            for box, prob, pts in zip(boxes, probs, points)
            if prob >= self.min_score
        ]
        return sorted(faces, key=lambda face: face.score, reverse=True)

    def refine(self, image: np.ndarray, box: tuple[float, float, float, float] | list[float]) -> Face | None:
        """MTCNN's last stage (O-Net) on one proposal: the face near ``box`` (a face box of an
        earlier frame, or another detector's) with its refined box, score and 5 landmarks, or None
        when O-Net scores the square around ``box`` below ``min_score`` (no face there). About a
        millisecond on a CPU, against tens for ``detect``: a tracker checks its guess with it."""
        import torch
        from facenet_pytorch.models.utils.detect_face import imresample

        _check_rgb(image)
        height, width = image.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1)
        if side < self.min_face_size / 2 or side <= 2:
            return None
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        left, top = int(cx - side / 2), int(cy - side / 2)  # MTCNN's rerec + pad: square, clipped
        right, bottom = int(cx + side / 2), int(cy + side / 2)
        cl, ct, cr, cb = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
        if cr - cl < 4 or cb - ct < 4:
            return None
        crop = torch.as_tensor(np.ascontiguousarray(image[ct:cb, cl:cr])).permute(2, 0, 1).unsqueeze(0).float()
        crop = (imresample(crop, (48, 48)) - 127.5) * 0.0078125
        onet = self._mtcnn.onet
        with self._lock, torch.no_grad():
            regression, points, probs = onet(crop.to(next(onet.parameters()).device))
        score = float(probs[0, 1])
        if score < max(self.min_score, self._mtcnn.thresholds[2]):
            return None
        w, h = cr - cl, cb - ct
        dx1, dy1, dx2, dy2 = (float(v) for v in regression[0])
        refined = np.array([cl + dx1 * w, ct + dy1 * h, cr + dx2 * w, cb + dy2 * h])
        pts = points[0].cpu().numpy()
        landmarks = np.stack([cl + w * pts[:5], ct + h * pts[5:]], axis=1).astype(np.float32)
        return Face(box=_clip_box(refined, image.shape), score=score, landmarks=landmarks)


def _clip_box(box: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    return (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))


def _check_rgb(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an RGB uint8 (H, W, 3) array, got {image.dtype} {image.shape}")


def face_nearest_center(faces: list[Face], shape: tuple[int, ...]) -> Face | None:
    """The face whose centre is nearest the image centre (LFW convention for cropped portraits)."""
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)
