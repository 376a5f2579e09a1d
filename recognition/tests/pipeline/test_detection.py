from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from recognition.pipeline.detection import MtcnnDetector, face_nearest_center
from recognition.pipeline.image import load_image


def test_one_face_per_portrait_with_landmarks_inside_the_box(detector: MtcnnDetector, people: dict[str, list[Path]]) -> None:
    for photos in people.values():
        for photo in photos:
            image = load_image(photo)
            faces = detector.detect(image)
            assert len(faces) == 1, photo
            face = faces[0]
            x1, y1, x2, y2 = face.box
            assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
            assert face.score >= 0.9
            assert face.landmarks.shape == (5, 2)
            assert np.all((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2))
            # eyes above the mouth corners
            assert face.landmarks[:2, 1].max() < face.landmarks[3:, 1].min()


def test_two_faces_found_in_the_two_face_photo(detector: MtcnnDetector, faces_dir: Path) -> None:
    faces = detector.detect(load_image(faces_dir / "two_faces.jpg"))
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score


def test_no_face_in_the_no_face_photo(detector: MtcnnDetector, faces_dir: Path) -> None:
    assert detector.detect(load_image(faces_dir / "no_face.jpg")) == []


def test_large_frames_are_downscaled_not_cropped(people: dict[str, list[Path]]) -> None:
    image = load_image(people["rose_leslie"][0])
    big = cv2.resize(image, (image.shape[1] * 4, image.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    small_detector = MtcnnDetector(max_side=640)
    reference = small_detector.detect(image)[0]
    found = small_detector.detect(big)
    assert len(found) == 1
    # boxes come back in the big frame's coordinates: 4x the small frame's
    assert np.allclose(np.array(found[0].box) / 4, reference.box, atol=6)


def test_rejects_arrays_that_are_not_rgb_uint8(detector: MtcnnDetector) -> None:
    with pytest.raises(TypeError):
        detector.detect(np.zeros((100, 100), dtype=np.uint8))
    with pytest.raises(TypeError):
        detector.detect(np.zeros((100, 100, 3), dtype=np.float32))


def test_face_nearest_center(detector: MtcnnDetector, faces_dir: Path) -> None:
    image = load_image(faces_dir / "two_faces.jpg")
    faces = detector.detect(image)
    chosen = face_nearest_center(faces, image.shape)
    cx = image.shape[1] / 2
    assert abs(chosen.center[0] - cx) == min(abs(f.center[0] - cx) for f in faces)
    assert face_nearest_center([], image.shape) is None
