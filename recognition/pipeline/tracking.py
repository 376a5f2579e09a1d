"""Face tracking through a burst: the main face of each frame found from the previous frame's box
(or a box another detector sent) instead of a full MTCNN pass, where that is safe.

Input: RGB uint8 frames (H, W, 3) in capture order and, per frame, an optional hint.
Output per frame: the face (MTCNN-like box, score and 5 landmarks, for alignment), dlib's 68
landmarks (for liveness), the box the next frame is tracked from, and whether detection ran.

How: MTCNN's last stage (O-Net, ``MtcnnDetector.refine``) scores and refines the square around the
hint; a face scoring under the detector's threshold, or one that moved or grew far from where it
was, falls back to full detection (the largest face, as a fresh burst starts). The 68-point
predictor is seeded by a box that stays fixed while the face stays put (a held photo gives the
same landmarks frame after frame, so it shows no motion, exactly as with detection on each frame)
and follows the face, in the detector's box convention, when it moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recognition.pipeline.detection import Face, MtcnnDetector

Box = tuple[float, float, float, float]

KEEP_IOU = 0.8  # the seed box stays while O-Net's box overlaps its anchor this much
LOST_IOU = 0.4  # below this the tracked face is not trusted: detect again


@dataclass(frozen=True)
class Tracked:
    """One frame's main face. ``seed`` is the box the 68 landmarks were found from (the detector's
    box convention); ``anchor`` O-Net's box when that seed was set; both carry to the next frame."""

    face: Face
    points: np.ndarray  # (68, 2) float32, dlib's 68-point layout
    seed: Box
    anchor: Box
    detected: bool


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _moved(box: Box, before: Box, after: Box) -> Box:
    """``box`` carried by the shift and scale that take ``before`` to ``after``."""
    sx = (after[2] - after[0]) / max(before[2] - before[0], 1e-6)
    sy = (after[3] - after[1]) / max(before[3] - before[1], 1e-6)
    return (after[0] + (box[0] - before[0]) * sx, after[1] + (box[1] - before[1]) * sy,
            after[0] + (box[2] - before[0]) * sx, after[1] + (box[3] - before[1]) * sy)


class FaceTracker:
    """``find(image, seed=None, anchor=None)`` -> Tracked or None (no face). Stateless: the caller
    passes the previous frame's ``seed``/``anchor`` (or a foreign box as ``seed`` alone)."""

    def __init__(self, *, detector: MtcnnDetector, landmarks: object) -> None:
        self.detector = detector
        self.landmarks = landmarks  # recognition.pipeline.liveness.FaceLandmarks68

    def detect(self, image: np.ndarray) -> Tracked | None:
        faces = self.detector.detect(image)
        if not faces:
            return None
        main = max(faces, key=lambda f: f.width * f.height)
        anchor = self.detector.refine(image, main.box)
        return self._landmarked(image, main, main.box, anchor.box if anchor is not None else main.box, detected=True)

    def find(self, image: np.ndarray, seed: Box | list[float] | None = None,
             anchor: Box | list[float] | None = None) -> Tracked | None:
        if seed is None:
            return self.detect(image)
        seed = tuple(float(v) for v in seed)
        refined = self.detector.refine(image, seed)
        if refined is None:
            return self.detect(image)
        if anchor is None:  # a foreign box (the edge device's detector): it only says where to look
            if iou(refined.box, seed) < LOST_IOU:
                return self.detect(image)
            return self._landmarked(image, refined, refined.box, refined.box, detected=False)
        anchor = tuple(float(v) for v in anchor)
        overlap = iou(refined.box, anchor)
        if overlap < LOST_IOU:
            return self.detect(image)
        if overlap < KEEP_IOU:
            seed, anchor = _moved(seed, anchor, refined.box), refined.box
        face = Face(box=_moved(seed, anchor, refined.box), score=refined.score, landmarks=refined.landmarks)
        return self._landmarked(image, face, seed, anchor, detected=False)

    def _landmarked(self, image: np.ndarray, face: Face, seed: Box, anchor: Box, *, detected: bool) -> Tracked | None:
        points = self.landmarks(image, Face(box=seed, score=face.score, landmarks=face.landmarks))
        if not detected:
            # The 68 points must describe a face where O-Net saw one: inside the image, and their
            # box overlapping the face's; otherwise trust nothing tracked and detect.
            height, width = image.shape[:2]
            xs, ys = points[:, 0], points[:, 1]
            inside = np.mean((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height))
            box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
            if inside < 0.9 or iou(box, face.box) < 0.3:
                return self.detect(image)
        return Tracked(face=face, points=points, seed=tuple(seed), anchor=tuple(anchor), detected=detected)
