"""Camera sources: a USB camera, the Jetson CSI camera through GStreamer, a video file or a
folder of images. Every source yields ``Frame`` objects; files and folders can play in real
time (frames that are late are dropped, as a live camera would) so the rest of the client sees
what it would see at a door."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class Frame:
    image: np.ndarray  # BGR
    index: int
    wall_time: float  # time.time() when the frame was captured (played)


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: float = 30.0,
                 flip: int = 0, out_width: int = 960, out_height: int = 540) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc) into OpenCV's BGR frames."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, framerate=(fraction){int(fps)}/1 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, width=(int){out_width}, height=(int){out_height}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1"
    )


class CameraError(RuntimeError):
    pass


class Source:
    fps: float = 30.0
    live: bool = True

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CaptureSource(Source):
    """A live camera (USB or CSI) through cv2.VideoCapture."""

    def __init__(self, capture: cv2.VideoCapture, description: str) -> None:
        if not capture.isOpened():
            raise CameraError(f"cannot open the camera {description}")
        self.capture = capture
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        self.description = description

    def frames(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                failures += 1
                if failures > 50:
                    raise CameraError(f"the camera {self.description} stopped delivering frames")
                time.sleep(0.02)
                continue
            failures = 0
            yield Frame(image, index, time.time())
            index += 1

    def close(self) -> None:
        self.capture.release()


class VideoFileSource(Source):
    live = False

    def __init__(self, path: str, realtime: bool = True, loop: bool = False) -> None:
        self.path, self.realtime, self.loop = path, realtime, loop
        probe = cv2.VideoCapture(path)
        if not probe.isOpened():
            raise CameraError(f"cannot open the video {path}")
        self.fps = probe.get(cv2.CAP_PROP_FPS) or 25.0
        probe.release()

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            capture = cv2.VideoCapture(self.path)
            start = time.monotonic()
            position = 0
            while True:
                if self.realtime:
                    due = start + position / self.fps
                    now = time.monotonic()
                    if now > due + 1.0 / self.fps:  # late: drop this frame without decoding it
                        if not capture.grab():
                            break
                        position += 1
                        continue
                    time.sleep(max(0.0, due - now))
                ok, image = capture.read()
                if not ok:
                    break
                yield Frame(image, index, time.time())
                index += 1
                position += 1
            capture.release()
            if not self.loop:
                return


class FolderSource(Source):
    live = False

    def __init__(self, path: str, fps: float = 10.0, realtime: bool = True, loop: bool = False) -> None:
        self.paths: list[Path] = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise CameraError(f"no images in {path}")
        self.fps, self.realtime, self.loop = fps, realtime, loop

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            start = time.monotonic()
            for position, path in enumerate(self.paths):
                if self.realtime:
                    due = start + position / self.fps
                    now = time.monotonic()
                    if now > due + 1.0 / self.fps:
                        continue
                    time.sleep(max(0.0, due - now))
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    continue
                yield Frame(image, index, time.time())
                index += 1
            if not self.loop:
                return


def open_source(spec: str, *, width: int = 1280, height: int = 720, fps: float = 30.0, realtime: bool = True,
                loop: bool = False, folder_fps: float = 10.0) -> Source:
    """``usb:0`` (or ``0``), ``csi:0``, ``gst:<pipeline>``, a video file, or a folder of images."""
    kind, _, rest = spec.partition(":")
    if spec.isdigit() or kind == "usb":
        index = int(rest or spec if not spec.isdigit() else spec)
        capture = cv2.VideoCapture(index, cv2.CAP_V4L2) if hasattr(cv2, "CAP_V4L2") else cv2.VideoCapture(index)
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
        return CaptureSource(capture, f"usb:{index}")
    if kind == "csi":
        pipeline = csi_pipeline(int(rest or 0), width, height, fps)
        return CaptureSource(cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), f"csi:{rest or 0} ({pipeline})")
    if kind == "gst":
        return CaptureSource(cv2.VideoCapture(rest, cv2.CAP_GSTREAMER), f"gst:{rest}")
    path = Path(spec)
    if path.is_dir():
        return FolderSource(spec, fps=folder_fps, realtime=realtime, loop=loop)
    if path.is_file():
        return VideoFileSource(spec, realtime=realtime, loop=loop)
    raise CameraError(f"unknown camera {spec!r}: use usb:N, csi:N, gst:PIPELINE, a video file or a folder")


def probe(spec: str) -> str | None:
    """A one-line description of the source, or None when it cannot be opened."""
    try:
        source = open_source(spec, realtime=False)
    except CameraError:
        return None
    description = f"{type(source).__name__} at {source.fps:.1f} fps"
    source.close()
    return description
