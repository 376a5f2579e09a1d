"""Fixtures of the edge client's tests (no Django needed: the client never imports it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BLINK_VIDEO = ROOT / "attendance" / "fixtures" / "blink_2s.mp4"


def video_frames(path: Path = BLINK_VIDEO) -> list[np.ndarray]:
    from conftest import video_frames as frames_of

    return frames_of(path)


@pytest.fixture(scope="session")
def blink_frames() -> list[np.ndarray]:
    return video_frames()


class RecordingLed:
    """A LED driver that remembers what it was told (instead of GPIO pins)."""

    def __init__(self) -> None:
        self.writes: list[tuple[bool, bool, bool]] = []

    def write(self, red: bool, green: bool, blue: bool) -> None:
        self.writes.append((red, green, blue))

    def close(self) -> None:
        pass
