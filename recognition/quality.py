"""Image-quality figures of an enrolled face (pure functions of the crop and landmarks)."""

from __future__ import annotations

import cv2
import numpy as np


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop: low values mean blur."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio(landmarks: np.ndarray) -> float:
    """How far the nose sits from the eyes' midline, in eye distances (0 = frontal, ~0.5 = profile)."""
    left_eye, right_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    if eye_distance < 1e-6:
        return 1.0
    midpoint = (left_eye + right_eye) / 2
    return float(abs(nose[0] - midpoint[0]) / eye_distance)
