"""Face tracking through a burst: on real footage it sees what MTCNN on every frame sees (the same
blink, the same head turn, a held photo still motionless) while detecting once; a hint that
points at nothing, or at another place, falls back to detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import video_frames
from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.image import load_image
from recognition.pipeline.liveness import LEFT_EYE, RIGHT_EYE, LivenessChecker, eye_aspect_ratio, find_blinks
from recognition.pipeline.tracking import FaceTracker, iou

FIXTURES = Path(__file__).resolve().parents[3] / "attendance" / "fixtures"


@pytest.fixture(scope="module")
def checker(detector: MtcnnDetector) -> LivenessChecker:
    return LivenessChecker(detector=detector)


@pytest.fixture(scope="module")
def blink() -> list[np.ndarray]:
    return video_frames(FIXTURES / "blink_2s.mp4", rgb=True)[0:48:2]  # 24 frames at 12 fps, a blink at 5-6


def _ear(points: list[np.ndarray | None]) -> np.ndarray:
    return np.array([np.nan if p is None else (eye_aspect_ratio(p[LEFT_EYE]) + eye_aspect_ratio(p[RIGHT_EYE])) / 2
                     for p in points])


def test_tracked_landmarks_show_the_blink_detection_shows(checker: LivenessChecker, blink: list[np.ndarray]) -> None:
    detected = checker.landmarks_per_frame(blink)
    tracked = checker.landmarks_per_frame(blink, track=True)
    assert all(p is not None for p in tracked)
    full, fast = _ear(detected), _ear(tracked)
    assert np.nanmax(np.abs(full - fast)) < 0.05, (full.round(3), fast.round(3))
    spans = [find_blinks(ear, 12) for ear in (full, fast)]
    assert len(spans[0]) == len(spans[1]) >= 1 and any(b.start <= 6 <= b.end for b in spans[1])
    for a, b in zip(*spans, strict=True):  # the same blinks, give or take a frame at their end
        assert a.start == b.start and abs(a.end - b.end) <= 1 and a.long == b.long
    verdicts = [checker.check(blink, 12, track=track) for track in (False, True)]
    assert [(r.live, r.reason, r.blinks) for r in verdicts] == [(True, "ok", len(spans[0]))] * 2


def test_only_the_first_frame_of_a_steady_burst_runs_detection(detector: MtcnnDetector, checker: LivenessChecker,
                                                               blink: list[np.ndarray]) -> None:
    tracker = FaceTracker(detector=detector, landmarks=checker.landmarks)
    previous, ran = None, []
    for frame in blink:
        previous = tracker.find(frame, previous.state if previous else None)
        ran.append(previous.detected)
    assert ran[0] and not any(ran[1:])
    full = max(detector.detect(blink[-1]), key=lambda f: f.width * f.height)
    assert iou(previous.face.box, full.box) > 0.7  # the tracked box stays in the detector's convention


def test_a_held_photo_stays_motionless_and_a_turn_reads_the_same(checker: LivenessChecker,
                                                                 blink: list[np.ndarray]) -> None:
    for track in (False, True):
        still = checker.check([blink[0]] * 24, 12, track=track)
        assert (still.live, still.reason, still.motion) == (False, "no_motion", 0.0)
    turn = video_frames(FIXTURES / "turn_2s.mp4", rgb=True)
    verdicts = [[checker.check_turn(turn, direction, track=track).reason for direction in ("right", "left")]
                for track in (False, True)]
    assert verdicts[0] == verdicts[1] == ["ok", "wrong_way"]


def test_a_hint_at_nothing_or_elsewhere_falls_back_to_detection(detector: MtcnnDetector, checker: LivenessChecker,
                                                                blink: list[np.ndarray], faces_dir: Path) -> None:
    tracker = FaceTracker(detector=detector, landmarks=checker.landmarks)
    frame = blink[3]
    truth = max(detector.detect(frame), key=lambda f: f.width * f.height)
    assert detector.refine(frame, (0, 0, 80, 80)) is None  # O-Net sees no face in the corner
    corner, elsewhere = [0.0, 0.0, 80.0, 80.0], [200.0, 400.0, 350.0, 600.0]
    for state in (corner, corner * 2 + [0.0] * 4, elsewhere * 2 + [0.0] * 4):
        found = tracker.find(frame, state)
        assert found is not None and found.detected, state
        assert iou(found.face.box, truth.box) > 0.95
    nobody = load_image(faces_dir / "no_face.jpg")
    assert tracker.find(nobody, [*truth.box, *truth.box, 0.0, 0.0, 0.0, 0.0]) is None
    # A box another detector sent (no anchor) is used where O-Net confirms a face there.
    foreign = tracker.find(frame, [truth.box[0] - 10, truth.box[1] + 10, truth.box[2] + 5, truth.box[3] - 5])
    assert foreign is not None and not foreign.detected and iou(foreign.face.box, truth.box) > 0.6


class _Spoiled:
    """The real 68-point predictor, except on one frame where its points land outside the image
    (a tracked face there fails its check and is detected again)."""

    def __init__(self, landmarks: object, spoiled: np.ndarray) -> None:
        self.landmarks, self.spoiled = landmarks, spoiled

    def __call__(self, image: np.ndarray, face: object) -> np.ndarray:
        points = self.landmarks(image, face)
        return points - 5000.0 if image is self.spoiled else points


@pytest.mark.parametrize("reach", [1, 3])
def test_a_whole_burst_tracked_in_passes_finds_exactly_what_frame_by_frame_finds(
        detector: MtcnnDetector, checker: LivenessChecker, blink: list[np.ndarray], faces_dir: Path,
        reach: int) -> None:
    nobody = load_image(faces_dir / "no_face.jpg")
    spoiled = blink[10].copy()
    frames = [*blink[:6], nobody, *blink[6:10], spoiled, *blink[11:16], nobody, nobody, nobody, nobody, *blink[16:]]
    tracker = FaceTracker(detector=detector, landmarks=_Spoiled(checker.landmarks, spoiled))
    sequential, last, state = [], None, None
    for index, frame in enumerate(frames):
        found = tracker.find(frame, state if last is not None and index - last <= reach else None)
        sequential.append(found)
        if found is not None:
            last, state = index, found.state
    passes = tracker.find_many(iter(frames), reach=reach)  # any iterable of frames
    assert len(passes) == len(frames)
    for index, (one, other) in enumerate(zip(sequential, passes, strict=True)):
        assert (one is None) == (other is None), index
        if one is not None:
            assert (one.detected, one.state, one.face.box) == (other.detected, other.state, other.face.box), index
            assert np.array_equal(one.points, other.points), index
    detected = [i for i, found in enumerate(passes) if found is not None and found.detected]
    spoiled_at = next(i for i, frame in enumerate(frames) if frame is spoiled)
    assert 0 in detected and spoiled_at in detected  # the spoiled frame failed its check
    assert all(passes[i] is None for i, frame in enumerate(frames) if frame is nobody)
