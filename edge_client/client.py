"""The edge client's loop: frames -> detection -> tracking -> a burst for each new visit (or on a
button press) -> the on-disk queue -> the portal, with the LED telling the person what happened.

Threads: the camera loop (this module's ``run``), the sender (delivers the queue in order and
sends heartbeats), the LED blinker, and the stdin reader of the simulated button.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge_client.camera import Frame, Source
from edge_client.config import EdgeConfig
from edge_client.detector import Box, Detection, Detector
from edge_client.hardware import Buttons, LedController
from edge_client.logs import emit
from edge_client.outbox import Item, Outbox
from edge_client.portal import BurstStream, PortalClient, Rejected, Unreachable
from edge_client.tracker import Track, Tracker

LED_FOR_OUTCOME = {
    "checked_in": "accepted", "checked_out": "accepted", "repeated": "accepted", "enrolled": "accepted",
    "unknown": "rejected", "no_face": "rejected", "liveness_failed": "liveness_failed",
}
JPEG_QUALITY = 88
CROP_SCALE = 2.2  # the burst's crop around the face, in face widths (room for head motion)
MAX_BURST_FRAMES = 48  # the portal's limit per check-in
CROP_MAX_SIDE = 360  # burst crops are downscaled to this (a face of ~160 px: plenty for the portal)


def crop_region(box: Box, shape: tuple[int, ...], scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """A square around the face, ``scale`` face widths wide, clipped to the frame."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(shape[1], cx + side / 2)), int(min(shape[0], cy + side / 2))
    return left, top, right, bottom


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


@dataclass
class Burst:
    """Frames being collected for one check-in (or one enrolment photo)."""

    kind: str  # check_in or enrol
    track_id: int | None
    region: tuple[int, int, int, int]
    started: float  # monotonic
    captured_at: str
    until: float
    interval: float
    code: str = ""
    frames: list[bytes] = field(default_factory=list)
    faces: list[list[float]] = field(default_factory=list)
    last_taken: float = -1.0
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # the event's idempotency key
    stream: BurstStream | None = None  # the frames going to the portal as they are taken


class EdgeClient:
    def __init__(self, config: EdgeConfig, source: Source, detector: Detector, led: LedController, buttons: Buttons,
                 outbox: Outbox | None, portal: PortalClient | None) -> None:
        self.config, self.source, self.detector, self.led, self.buttons = config, source, detector, led, buttons
        self.outbox, self.portal = outbox, portal
        if outbox is not None:
            outbox.max_retry_ahead = max(outbox.max_retry_ahead, 2 * config.retry_max_seconds)
        self.tracker = Tracker(max_gap=config.visit_gap_seconds)
        self.burst: Burst | None = None
        self.pending_enrol: str | None = None
        self.stopping = threading.Event()
        self.reachable = True
        self.stats = {"frames": 0, "faces": 0, "visits": 0, "queued": 0, "delivered": 0, "dead_letters": 0}
        self.retry = config.retry_policy()
        self._reported: tuple[int, int] | None = None  # the dead-letter state the portal last heard
        self._last_preview = 0.0
        self._sender: threading.Thread | None = None

    # --- camera loop ---------------------------------------------------------------------------
    def run(self) -> int:
        emit("started", detector=self.detector.name, source=type(self.source).__name__, dry_run=self.config.dry_run,
             pending=self.outbox.pending() if self.outbox else 0)
        if self.outbox is not None and self.outbox.set_aside:
            emit("queue_corrupt", logging.ERROR, set_aside=self.outbox.set_aside,
                 detail="the queue file could not be read; it was kept under this name and a fresh queue started")
        if self.portal is not None and self.outbox is not None:
            self._sender = threading.Thread(target=self._send_loop, name="sender", daemon=True)
            self._sender.start()
        try:
            for frame in self.source.frames():
                if self.stopping.is_set():
                    break
                self.step(frame)
            else:
                emit("source_ended", frames=self.stats["frames"])
        except KeyboardInterrupt:
            emit("interrupted")
        finally:
            self.source.close()
        if self.burst is not None:
            self._finish_burst()
        if self.config.exit_when_done and self.outbox is not None and self.portal is not None:
            self._drain()
        self.stop()
        emit("stopped", **self.stats, pending=self.outbox.pending() if self.outbox else 0)
        return 0

    def step(self, frame: Frame) -> None:
        now = time.monotonic()
        self.stats["frames"] += 1
        detections = self.detector.detect(frame.image)
        self.stats["faces"] += len(detections)
        tracks = self.tracker.update(detections, now)
        self._handle_buttons(tracks, frame)
        if self.burst is not None:
            self._collect(frame, tracks, now)
        elif self.config.trigger in ("auto", "both"):
            ready = [t for t in tracks if not t.sent and t.hits >= self.config.settle_frames and t.width >= self.detector.min_face]
            if ready:
                self._start_burst("check_in", max(ready, key=lambda t: t.width), frame, now)
        if self.burst is None and self.pending_enrol and tracks:
            code, self.pending_enrol = self.pending_enrol, None
            self._start_burst("enrol", max(tracks, key=lambda t: t.width), frame, now, code=code)
        self._maybe_preview(frame, detections, now)

    def _handle_buttons(self, tracks: list[Track], frame: Frame) -> None:
        while (event := self.buttons.poll()) is not None:
            kind, value = event
            emit("button", action=kind)
            if kind == "quit":
                self.stopping.set()
            elif kind == "enrol":
                self.pending_enrol = value
            elif kind == "press" and self.burst is None:
                if self.config.trigger == "auto":
                    continue
                if not tracks:
                    emit("button_no_face", logging.WARNING)
                    self.led.show("rejected", hold=True)
                    continue
                self._start_burst("check_in", max(tracks, key=lambda t: t.width), frame, time.monotonic())

    def _start_burst(self, kind: str, track: Track, frame: Frame, now: float, code: str = "") -> None:
        track.sent = True
        seconds = self.config.burst_seconds if kind == "check_in" else 1.0
        self.burst = Burst(kind=kind, track_id=track.id, region=crop_region(track.box, frame.image.shape), started=now,
                           captured_at=dt.datetime.fromtimestamp(frame.wall_time, dt.timezone.utc).isoformat(),
                           until=now + seconds, interval=1.0 / self.config.burst_fps, code=code)
        self.stats["visits"] += 1
        if (kind == "check_in" and self.config.stream_bursts and self.portal is not None and self.outbox is not None
                and not self.config.dry_run and self.outbox.pending() == 0):
            # Nothing queued ahead of it: the portal may decide while the frames are still coming.
            self.burst.stream = self.portal.stream_start(self.burst.key, self.config.burst_fps, self.burst.captured_at)
        emit("burst_started", kind=kind, track=track.id, face_px=round(track.width), key=self.burst.key,
             streamed=self.burst.stream is not None)
        self.led.show("working")

    def _collect(self, frame: Frame, tracks: list[Track], now: float) -> None:
        burst = self.burst
        track = next((t for t in tracks if t.id == burst.track_id), None)
        if burst.track_id is not None and track is None:
            # The face is not in this frame (turned away, walked off): send only frames that show it.
            if now >= burst.until:
                self._finish_burst()
            return
        if now - burst.last_taken >= burst.interval * 0.9:
            left, top, right, bottom = burst.region
            crop = frame.image[top:bottom, left:right]
            scale = min(1.0, CROP_MAX_SIDE / max(crop.shape[:2])) if burst.kind == "check_in" else 1.0
            if scale < 1.0:
                crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            burst.frames.append(jpeg(crop))
            box = [(v - o) * scale for v, o in zip(track.box, (left, top, left, top))] if track else []
            burst.faces.append([round(v, 1) for v in box])
            burst.last_taken = now
            if burst.stream is not None:
                burst.stream.frame(burst.frames[-1], burst.faces[-1])
        if now >= burst.until or len(burst.frames) >= MAX_BURST_FRAMES:
            self._finish_burst()

    def _finish_burst(self) -> None:
        burst, self.burst = self.burst, None
        if not burst.frames:
            if burst.stream is not None:
                self.portal.stream_discard(burst.key)
            self.led.set_base("idle" if self.reachable else "unreachable")
            self.led.show(self.led.base)
            return
        seconds = max(1e-3, burst.last_taken - burst.started)
        fps = round(max(1.0, min(120.0, (len(burst.frames) - 1) / seconds if len(burst.frames) > 1 else self.config.burst_fps)), 2)
        key = burst.key
        streamed = burst.stream is not None and burst.stream.end()
        if burst.kind == "check_in":
            body: dict[str, Any] = {"fps": fps, "frames": [base64.b64encode(f).decode() for f in burst.frames],
                                    "faces": burst.faces}
        else:
            sharpest = max(burst.frames, key=_sharpness)
            body = {"code": burst.code, "photo": base64.b64encode(sharpest).decode()}
        size = sum(len(f) for f in burst.frames)
        if self.config.dry_run or self.outbox is None:
            emit("would_send", kind=burst.kind, key=key, frames=len(burst.frames), bytes=size, fps=fps)
            self.led.show("idle")
            return
        self.outbox.put(key=key, kind=burst.kind, captured_at=burst.captured_at, body=body)
        self.stats["queued"] += 1
        # Queued even when streamed: the queue keeps it until the decision is in, so a stream that
        # breaks (or a restart) only means the event is delivered whole, under the same key.
        emit("queued", kind=burst.kind, key=key, frames=len(burst.frames), bytes=size, fps=fps,
             pending=self.outbox.pending(), streamed=streamed)

    def _maybe_preview(self, frame: Frame, detections: list[Detection], now: float) -> None:
        if self.portal is None or not self.config.preview_seconds or now - self._last_preview < self.config.preview_seconds:
            return
        self._last_preview = now
        image = frame.image.copy()
        for d in detections:
            x1, y1, x2, y2 = (int(v) for v in d.box)
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 0), max(2, image.shape[1] // 320))
        scale = 320 / image.shape[1]
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = [{"box": [round(v * scale) for v in d.box], "score": round(d.score, 3)} for d in detections]
        self.portal.preview(jpeg(small, 70), faces)

    # --- sender --------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        """Deliver due events oldest first. A failing event waits for its own retry while the rest
        keep flowing; an event refused for good, or failing past the retry bounds, is moved to the
        dead-letter table; only a portal that cannot be reached at all holds everything back."""
        outages = 0
        last_heartbeat = 0.0
        failures = 0
        while not self.stopping.is_set():
            try:
                outages, last_heartbeat = self._send_step(outages, last_heartbeat)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the sender must outlive a disk error or a strange answer
                failures += 1
                emit("sender_error", logging.ERROR, error=repr(exc)[:300], failures=failures)
                self.stopping.wait(min(60.0, 2.0 ** min(failures, 6)))

    def _send_step(self, outages: int, last_heartbeat: float) -> tuple[int, float]:
        """One turn of the send loop: a heartbeat when nothing is due, else the head event's try."""
        item = self.outbox.head()
        if item is None:
            state = self.outbox.dead_letter_state()
            due = time.monotonic() - last_heartbeat >= self.config.heartbeat_seconds
            if due or not self.reachable or state != self._reported:
                try:
                    self._heartbeat(state)
                except Unreachable as exc:
                    self._portal_away(str(exc), outages)
                    outages += 1
                    return outages, last_heartbeat
                except Rejected as exc:  # a heartbeat refused for good (a wrong portal_url, say): say so, keep trying
                    emit("heartbeat_refused", logging.ERROR, code=exc.code, detail=exc.detail)
                    self.stopping.wait(min(self.config.heartbeat_seconds, 30.0))
                    last_heartbeat = time.monotonic()
                    return outages, last_heartbeat
                outages = 0
                last_heartbeat = time.monotonic()
                self._set_reachable(True)
            next_due = self.outbox.due_in()
            self.outbox.wait(min(1.0, self.config.heartbeat_seconds, 1.0 if next_due is None else max(0.05, next_due)))
            return outages, last_heartbeat
        try:
            answer = self.portal.deliver(item.kind, item.key, item.captured_at, item.body)
        except Unreachable as exc:
            # A dropped connection or a 5xx is this event's fault only if the portal still
            # answers a heartbeat (a proxy answering 502 for everything is the portal away).
            if exc.kind == "portal" or (exc.kind in ("network", "server") and not self._portal_answers()):
                # The portal is away or cannot take events now: not this event's fault.
                self.outbox.attempt_failed(item.seq, str(exc))
                self._portal_away(str(exc), outages)
                outages += 1
                return outages, last_heartbeat
            outages = 0
            self._set_reachable(True)
            self._event_failed(item, exc.code if exc.kind == "server" else "connection_lost", str(exc))
            return outages, last_heartbeat
        except Rejected as exc:
            outages = 0
            self._set_reachable(True)
            self._dead_letter(item, exc.code, exc.detail)
            return outages, last_heartbeat
        except sqlite3.Error:
            raise  # the queue itself: the send loop's guard backs off and tries again
        except Exception as exc:  # noqa: BLE001 - a malformed queued event must not block the queue forever
            self._event_failed(item, "client_error", repr(exc)[:300])
            return outages, last_heartbeat
        outages = 0
        last_heartbeat = time.monotonic()
        self._set_reachable(True)
        self.outbox.delivered(item.seq, answer)
        self.stats["delivered"] += 1
        age = time.time() - dt.datetime.fromisoformat(item.captured_at).timestamp()
        emit("decision", key=item.key, kind=item.kind, outcome=answer.get("outcome"), employee=answer.get("employee"),
             message=answer.get("message"), attempts=item.attempts + 1, delay_s=round(age, 1),
             via=self.portal.last_via)
        self._tell(LED_FOR_OUTCOME.get(answer.get("outcome"), "rejected"), age)
        return outages, last_heartbeat

    def _tell(self, state: str, age: float) -> None:
        """Show an answer on the LED while the person may still be at the door."""
        if age <= self.config.fresh_seconds and self.burst is None:
            self.led.show(state, hold=True)
        elif self.burst is None and self.led.state == "working":
            self.led.show(self.led.base)  # too late to tell the person: stop showing "working"

    def _portal_away(self, error: str, outages: int) -> None:
        wait = self.retry.portal_delay(outages + 1)
        if self.reachable or outages % 4 == 3:
            emit("portal_unreachable", logging.WARNING, error=error, pending=self.outbox.pending(), retry_in=round(wait, 1))
        self._set_reachable(False)
        self.stopping.wait(wait)

    def _portal_answers(self) -> bool:
        """After a connection dropped on an event: does the portal still answer a heartbeat? Then
        the event, not the portal, is what failed."""
        try:
            self.portal.heartbeat()
        except (Unreachable, Rejected):
            return False
        return True

    def _event_failed(self, item: Item, code: str, error: str) -> None:
        failures = item.failures + 1
        age = time.time() - item.queued_at
        if self.retry.give_up(failures, age):
            self._dead_letter(item, code, f"failed {failures} times over {round(age)} s; last: {error}")
            return
        wait = self.retry.event_delay(failures)
        self.outbox.retry_later(item.seq, error, at=time.time() + wait)
        # Queued for a later try: the person at the door (if it is theirs) sees yellow, not "working".
        captured = time.time() - dt.datetime.fromisoformat(item.captured_at).timestamp() if item.captured_at else 0.0
        self._tell("unreachable", captured)
        emit("delivery_failed", logging.WARNING, key=item.key, kind=item.kind, code=code, error=error[:200],
             failures=failures, retry_in=round(wait, 1), pending=self.outbox.pending())

    def _dead_letter(self, item: Item, code: str, reason: str) -> None:
        self.outbox.dead_letter(item.seq, code, reason)
        self.stats["dead_letters"] += 1
        age = time.time() - dt.datetime.fromisoformat(item.captured_at).timestamp() if item.captured_at else 0.0
        emit("dead_letter", logging.ERROR, key=item.key, kind=item.kind, code=code, reason=reason[:300],
             captured_at=item.captured_at, attempts=item.attempts + 1, dead_letters=self.outbox.dead_letter_count())
        self._tell("rejected", age)

    def _heartbeat(self, state: tuple[int, int]) -> None:
        """A heartbeat carrying the dead-letter report (count and the latest five)."""
        recent = [{"key": letter.key, "captured_at": letter.captured_at, "reason": f"{letter.code}: {letter.reason}"[:200]}
                  for letter in self.outbox.dead_letters(limit=5)]
        self.portal.heartbeat({"dead_letters": state[0], "recent_dead_letters": recent})
        if state != self._reported:
            emit("dead_letters_reported", dead_letters=state[0])
        self._reported = state

    def _set_reachable(self, reachable: bool) -> None:
        if reachable != self.reachable:
            self.reachable = reachable
            emit("portal_reachable" if reachable else "portal_down", pending=self.outbox.pending())
        self.led.set_base("idle" if reachable else "unreachable")
        if not reachable and self.burst is None and self.led.state == "working":
            self.led.show("unreachable")  # the event waits in the queue; the person is told the portal is away

    def _drain(self) -> None:
        deadline = time.monotonic() + self.config.drain_timeout
        while ((self.outbox.pending() or self._reported != self.outbox.dead_letter_state())
               and time.monotonic() < deadline and not self.stopping.is_set()):
            self.outbox.wait(0.5)
        if self.outbox.pending():
            emit("drain_timeout", logging.WARNING, pending=self.outbox.pending())
        else:
            time.sleep(min(self.led.hold, 2.0) + 0.2)  # let the last decision show on the LED

    def stop(self) -> None:
        self.stopping.set()
        if self._sender is not None:
            with self.outbox.changed:
                self.outbox.changed.notify_all()
            self._sender.join(timeout=self.config.drain_timeout)


def _sharpness(data: bytes) -> float:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return float(cv2.Laplacian(image, cv2.CV_64F).var())
