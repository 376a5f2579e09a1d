"""Liveness: eye aspect ratio, blink runs, motion; a burst of one repeated still photo is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import video_frames
from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.image import load_image
from recognition.pipeline.liveness import LivenessChecker, eye_aspect_ratio, find_blinks, landmark_motion


def test_eye_aspect_ratio_open_and_closed() -> None:
    open_eye = np.array([[0, 0], [3, -2], [7, -2], [10, 0], [7, 2], [3, 2]], dtype=float)
    closed_eye = np.array([[0, 0], [3, -0.4], [7, -0.4], [10, 0], [7, 0.4], [3, 0.4]], dtype=float)
    assert eye_aspect_ratio(open_eye) == pytest.approx(0.4)
    assert eye_aspect_ratio(closed_eye) == pytest.approx(0.08)


def test_find_blinks_separates_blinks_from_long_closures() -> None:
    ear = np.full(100, 0.30)
    ear[10:13] = 0.12          # a 3-frame blink
    ear[40:70] = 0.10          # eyes held shut for 30 frames (1.2 s at 25 fps)
    ear[80] = np.nan           # a frame without a face is not a blink
    ear[90] = 0.1              # a one-frame dip (40 ms) is noise, not a blink
    blinks = find_blinks(ear, fps=25)
    assert [(b.start, b.end, b.long) for b in blinks] == [(10, 12, False), (40, 69, True)]


def test_motion_of_a_repeated_still_is_zero_and_of_a_moving_face_is_not() -> None:
    still = np.random.default_rng(0).uniform(0, 100, size=(68, 2))
    assert landmark_motion([still] * 5) == 0.0
    moving = [still + np.random.default_rng(i).normal(scale=1.0, size=(68, 2)) for i in range(5)]
    assert landmark_motion(moving) > 0.002
    shifted = [still + [i * 3, 0] for i in range(5)]  # the whole photo slides: no facial motion
    assert landmark_motion(shifted) == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def checker() -> LivenessChecker:
    return LivenessChecker(detector=MtcnnDetector(min_face_size=20))


def test_a_burst_of_one_repeated_still_photo_is_refused(checker: LivenessChecker, people: dict[str, list[Path]]) -> None:
    photo = load_image(people["joe_biden"][1])
    result = checker.check([photo] * 24, fps=12)
    assert not result.live and result.reason == "no_motion" and result.motion == 0.0


def test_no_face_in_the_burst_is_refused(checker: LivenessChecker, faces_dir: Path) -> None:
    result = checker.check([load_image(faces_dir / "no_face.jpg")] * 6, fps=12)
    assert not result.live and result.reason == "no_face"


def test_the_blink_in_the_shared_glasses_video_is_found(checker: LivenessChecker, shared_data: Path) -> None:
    frames = video_frames(shared_data / "video" / "blink_glasses_3s_96x128.mp4", rgb=True)
    result = checker.check(frames, fps=25)
    ear = np.array(result.ear)
    blinks = find_blinks(ear, fps=25)
    assert any(b.start <= 17 and b.end >= 14 for b in blinks), blinks  # annotated frames 14-17
    assert result.live and result.blinks >= 1


TURN_VIDEO = Path(__file__).resolve().parents[3] / "attendance" / "fixtures" / "turn_2s.mp4"


def _rgb_frames(path: Path) -> list[np.ndarray]:
    from conftest import video_frames

    return video_frames(path, rgb=True)


def test_head_yaw_is_signed_and_flips_in_a_mirror(checker: LivenessChecker, people: dict[str, list[Path]]) -> None:
    from recognition.pipeline.liveness import head_yaw

    turned = load_image(people["kit_harington"][1].read_bytes())  # a face turned well to one side
    points, mirrored = checker.landmarks_per_frame([turned, np.ascontiguousarray(turned[:, ::-1])])
    assert abs(head_yaw(points)) > 0.2
    assert head_yaw(points) == pytest.approx(-head_yaw(mirrored), abs=0.06)
    frontal = checker.landmarks_per_frame([load_image(people["rose_leslie"][0].read_bytes())])[0]
    assert abs(head_yaw(frontal)) < 0.1


def test_the_head_turn_challenge_on_a_real_turn(checker: LivenessChecker) -> None:
    """turn_2s.mp4: a real person turning their head to their right (see the fixtures' README)."""
    frames = _rgb_frames(TURN_VIDEO)
    asked_right = checker.check_turn(frames, "right")
    assert asked_right.live and asked_right.reason == "ok"
    assert min(asked_right.ear) < asked_right.ear[0] - 0.4  # the yaw series went well to that side
    asked_left = checker.check_turn(frames, "left")
    assert not asked_left.live and asked_left.reason == "wrong_way"
    still = checker.check_turn([frames[0]] * 20, "right")
    assert not still.live and still.reason == "no_motion"
    # Two stills, frontal then turned, are not a turning head either.
    swapped = checker.check_turn([frames[0]] * 10 + [frames[-8]] * 10, "right")
    assert not swapped.live and swapped.reason == "no_motion"
    with pytest.raises(ValueError):
        checker.check_turn(frames, "up")
