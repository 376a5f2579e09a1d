"""Face tracking through a burst: the main face of each frame found from the previous frame's box
(or a box another detector sent) instead of a full MTCNN pass, where that is safe.

Input: RGB uint8 frames (H, W, 3) in capture order and, per frame, an optional hint.
Output per frame: the face (MTCNN-like box, score and 5 landmarks, for alignment), dlib's 68
landmarks (for liveness), the box the next frame is tracked from, and whether detection ran.

How: MTCNN's last stage (O-Net, ``MtcnnDetector.refine``) scores and refines the square around the
hint; a face scoring under the detector's threshold, or one that moved or grew far from where it
was, falls back to full detection (the largest face, as a fresh burst starts). O-Net's box is
mapped into the detector's box convention (calibrated on the last detected frame), and the
68-point predictor is seeded by that box — except while the face does not move, when the seed
stays exactly as it was (a held photo gives the same landmarks frame after frame, so it shows
no motion, exactly as with detection on each frame).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from recognition.pipeline.detection import Face, MtcnnDetector

Box = tuple[float, float, float, float]

STILL_IOU = 0.95  # O-Net's box this close to the last one: the face did not move, keep the seed
LOST_IOU = 0.4  # below this the tracked face is not trusted: detect again


@dataclass(frozen=True)
class Guess:
    """Where a frame's main face is, before its 68 points are found and checked. ``seed`` is the box
    the 68 landmarks are found from (the detector's box convention); ``anchor`` O-Net's box when
    that seed was set; ``calibration`` how the detector's box sits around O-Net's (offsets in
    O-Net box widths/heights, from the last detection). The three carry to the next frame
    (``state``)."""

    face: Face
    seed: Box
    anchor: Box
    calibration: tuple[float, float, float, float]
    detected: bool

    @property
    def state(self) -> list[float]:
        # Rounded as it travels between a stream's frames (JSON): the streamed and the
        # whole-burst paths track from the same numbers.
        return [round(float(v), 4) for v in (*self.seed, *self.anchor, *self.calibration)]


@dataclass(frozen=True)
class Tracked(Guess):
    """One frame's main face, checked, with its 68 points."""

    points: np.ndarray  # (68, 2) float32, dlib's 68-point layout


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _calibration(detected: Box, refined: Box) -> tuple[float, float, float, float]:
    w, h = max(refined[2] - refined[0], 1e-6), max(refined[3] - refined[1], 1e-6)
    return ((detected[0] - refined[0]) / w, (detected[1] - refined[1]) / h,
            (detected[2] - refined[2]) / w, (detected[3] - refined[3]) / h)


def _calibrated(refined: Box, calibration: tuple[float, float, float, float]) -> Box:
    w, h = refined[2] - refined[0], refined[3] - refined[1]
    return (refined[0] + calibration[0] * w, refined[1] + calibration[1] * h,
            refined[2] + calibration[2] * w, refined[3] + calibration[3] * h)


class FaceTracker:
    """``find(image, state=None)`` -> Tracked or None (no face). Stateless: the caller passes the
    previous frame's ``Tracked.state`` (12 numbers), or a box [x1, y1, x2, y2] another detector
    found (4 numbers), or nothing (detect). ``find_many(images)``: a whole burst, the same answers
    as ``find`` frame by frame, faster."""

    def __init__(self, *, detector: MtcnnDetector, landmarks: object) -> None:
        self.detector = detector
        self.landmarks = landmarks  # recognition.pipeline.liveness.FaceLandmarks68

    def detect(self, image: np.ndarray) -> Tracked | None:
        guess = self._detected(image)
        return None if guess is None else self._checked(image, guess, self._points(image, guess))

    def find(self, image: np.ndarray, state: list[float] | tuple[float, ...] | None = None) -> Tracked | None:
        guess = self._guess(image, state)
        if guess is None:
            return None
        found = self._checked(image, guess, self._points(image, guess))
        return found if found is not None else self.detect(image)

    def find_many(self, images: Iterable[np.ndarray], *, reach: int = 3) -> list[Tracked | None]:
        """Each frame's face as ``find`` gives it, each frame tracked from the state of the last
        frame with a face at most ``reach`` frames before it (detection otherwise).

        Worked in passes rather than frame by frame: O-Net along the burst first, then the 68
        points of every frame, then their checks. Each model's weights then stay in the CPU's
        cache from one frame to the next (the 68-point predictor is about 100 MB and takes about
        3 ms a frame right after O-Net ran, under 1 ms run back to back). From the first frame
        whose check fails (detected instead) the rest goes frame by frame, so the answers are
        exactly ``find``'s."""
        images = list(images)
        guesses: list[Guess | None] = []
        last, state = None, None
        for index, image in enumerate(images):
            guess = self._guess(image, state if last is not None and index - last <= reach else None)
            guesses.append(guess)
            if guess is not None:
                last, state = index, guess.state
        points = [None if guess is None else self._points(image, guess)
                  for image, guess in zip(images, guesses, strict=True)]
        found: list[Tracked | None] = []
        diverged = False  # a check failed: the later guesses were made from a state that is not the frame's
        last, state = None, None
        for index, image in enumerate(images):
            if diverged:
                result = self.find(image, state if last is not None and index - last <= reach else None)
            elif (guess := guesses[index]) is None:
                result = None
            elif (result := self._checked(image, guess, points[index])) is None:
                result, diverged = self.detect(image), True
            found.append(result)
            if result is not None:
                last, state = index, result.state
        return found

    def _detected(self, image: np.ndarray) -> Guess | None:
        faces = self.detector.detect(image)
        if not faces:
            return None
        main = max(faces, key=lambda f: f.width * f.height)
        refined = self.detector.refine(image, main.box)
        anchor = refined.box if refined is not None else main.box
        return Guess(main, main.box, anchor, _calibration(main.box, anchor), detected=True)

    def _guess(self, image: np.ndarray, state: list[float] | tuple[float, ...] | None) -> Guess | None:
        """Where the face is, from ``state`` where O-Net confirms it; detection otherwise."""
        if state is None:
            return self._detected(image)
        values = [float(v) for v in state]
        seed = tuple(values[:4])
        refined = self.detector.refine(image, seed)
        if refined is None:
            return self._detected(image)
        if len(values) != 12:  # a foreign box (the edge device's detector): it only says where to look
            if iou(refined.box, seed) < LOST_IOU:
                return self._detected(image)
            return Guess(refined, refined.box, refined.box, (0.0, 0.0, 0.0, 0.0), detected=False)
        anchor, calibration = tuple(values[4:8]), tuple(values[8:])
        overlap = iou(refined.box, anchor)
        if overlap < LOST_IOU:
            return self._detected(image)
        box = _calibrated(refined.box, calibration)
        if overlap < STILL_IOU:
            seed, anchor = box, refined.box
        return Guess(Face(box=box, score=refined.score, landmarks=refined.landmarks), seed, anchor, calibration,
                      detected=False)

    def _points(self, image: np.ndarray, guess: Guess) -> np.ndarray:
        face = guess.face
        return self.landmarks(image, Face(box=guess.seed, score=face.score, landmarks=face.landmarks))

    def _checked(self, image: np.ndarray, guess: Guess, points: np.ndarray) -> Tracked | None:
        """The frame's Tracked; None when a tracked face's 68 points do not describe a face where
        O-Net saw one (outside the image, or their box not overlapping the face's): detect then."""
        if not guess.detected:
            height, width = image.shape[:2]
            xs, ys = points[:, 0], points[:, 1]
            inside = np.mean((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height))
            box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
            if inside < 0.9 or iou(box, guess.face.box) < 0.3:
                return None
        return Tracked(face=guess.face, points=points, seed=tuple(guess.seed), anchor=tuple(guess.anchor),
                       calibration=tuple(guess.calibration), detected=guess.detected)
