"""The client loop in dry-run mode on the real fixture video: a person standing at the door is one
visit (one burst), not one per frame; a person who leaves and comes back is a second visit."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_client import camera, config, hardware
from edge_client.client import EdgeClient
from edge_client.detector import create_detector
from edge_client.tests.conftest import RecordingLed


def _run(source_path: str, caplog, buttons: hardware.Buttons | None = None, **overrides) -> list[logging.LogRecord]:
    settings = config.load(None, env={}, flags={"dry_run": True, "min_face": 40, "visit_gap_seconds": 0.5,
                                                 "preview_seconds": 0, **overrides})
    source = camera.open_source(source_path, realtime=True, folder_fps=24)
    led = hardware.LedController(RecordingLed(), hold=0.1)
    client = EdgeClient(settings, source, create_detector("auto", 40), led, buttons or hardware.Buttons(), None, None)
    with caplog.at_level(logging.INFO, logger="edge_client"):
        client.run()
    led.close()
    return [r for r in caplog.records if r.name == "edge_client"]


def test_one_burst_per_visit(tmp_path: Path, blink_frames, caplog) -> None:
    blank = np.full_like(blink_frames[0], 128)
    for index, frame in enumerate(blink_frames + [blank] * 24 + blink_frames):
        cv2.imwrite(str(tmp_path / f"{index:04d}.jpg"), frame)
    records = _run(str(tmp_path), caplog)
    sent = [r.fields for r in records if r.getMessage() == "would_send"]
    assert len(sent) == 2, [r.getMessage() for r in records]
    assert all(s["kind"] == "check_in" and s["frames"] >= 15 and 8 <= s["fps"] <= 14 for s in sent)
    states = [r.fields["state"] for r in records if r.getMessage() == "led"]
    first = states.index("working")
    assert states[first:first + 2] == ["working", "idle"] and states.count("working") == 2


@pytest.mark.parametrize("press", [False, True])
def test_button_trigger_waits_for_a_press(caplog, press) -> None:
    from edge_client.tests.conftest import BLINK_VIDEO

    buttons = hardware.Buttons()
    if press:
        buttons.press()
    records = _run(str(BLINK_VIDEO), caplog, buttons=buttons, trigger="button")
    sent = [r for r in records if r.getMessage() == "would_send"]
    assert len(sent) == (1 if press else 0)
