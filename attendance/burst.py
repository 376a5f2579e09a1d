"""A check-in burst decided frame by frame: each frame's main face tracked from the one before,
its landmarks kept for liveness, the best views embedded as they come; the decision at the end.

Two ways in, one code path:
- REST (``attendance.services._look``, the whole burst at once): the frames are analysed in
  order with tracking and the chosen views embedded in one batch at the end.
- Streamed (the websockets ``/ws/device/`` and ``/ws/kiosk/``, attendance.consumers): each frame
  is analysed as it arrives (``StreamedBurst``: task ``attendance.burst_frame`` through the
  dispatch seam, in a worker thread so the socket keeps reading), its view embedded at once when
  chosen; at ``burst_end`` only the decision and the write are left (task ``attendance.burst_finish``).

The streaming protocol (JSON text frames; ``key`` is the device's idempotency key on
``/ws/device/``; on ``/ws/kiosk/`` the server makes one per stream and the browser may omit it):

    -> {"type": "burst_start", "key": K, "fps": 12, "captured_at": ISO 8601 with offset (devices, optional),
        "challenge": token (kiosk, optional: from POST /api/v1/liveness/challenge)}
    <- {"type": "burst_started", "key": K}
    -> {"type": "frame", "key": K, "index": i, "jpeg": base64 JPEG,
        "box": [x1, y1, x2, y2] or null (optional: where the sender's own detector saw the face)}
       ... index 0, 1, 2, ... in capture order, at most BURST_MAX_FRAMES (48) frames
    -> {"type": "burst_end", "key": K, "frames": N}
    <- {"type": "decision", "key": K, "answer": {...}}   (the same answer as a check_in message)
    <- {"type": "error", "key": K, "code": C, "detail": text}

One stream is open per socket at a time; nothing is written before ``burst_end``. A device key
already answered gets its stored answer (one decision, at ``burst_end``; its frames are not
analysed again). Error codes: ``burst_not_started`` (a frame or burst_end with no open stream),
``unknown_key`` (a key that is not the open stream's), ``burst_open`` (burst_start while one is
open; the open one continues), ``too_many_frames`` (frame 49: the stream is dropped),
``burst_timeout`` (no frame for ROLLCALL_BURST_IDLE_SECONDS: dropped), ``bad_request`` (bad
fields, base64, an index out of order, a burst_end whose count differs from the frames sent),
the image codes of the REST API for a frame that is not a usable JPEG (the stream is dropped; its
remaining frames are ignored and its burst_end answered with the same error), ``not_allowed``
(kiosk socket without a manager session or device token), and the REST path's check-in errors
(``captured_at_too_old``, ``recognition_unavailable``, ...).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from attendance.services import BURST_MAX_FRAMES, BURST_VIEWS

if TYPE_CHECKING:
    from attendance.services import _Seen
    from recognition.pipeline.tracking import FaceTracker, Tracked

BURST_SECONDS = 2.0  # a kiosk or door burst lasts about this long: the views spread over it
CLOSED_RATIO = 0.75  # as find_blinks: eyes count as closed below this fraction of the open level
REACH = 3  # a frame is tracked from the last face at most this many frames before it (detected otherwise)
FRONTAL = 0.2  # a challenge's views: head turn (eye distances, |head_yaw|) at most this


def _tracker() -> FaceTracker:
    from recognition.engine import get_liveness_checker, get_pipeline
    from recognition.pipeline.tracking import FaceTracker

    return FaceTracker(detector=get_pipeline().detector, landmarks=get_liveness_checker().landmarks)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def analyse_image(image: np.ndarray, *, index: int, hint: list[float] | None) -> dict[str, Any]:
    """One decoded frame (RGB uint8) -> its main face, found from ``hint`` where safe: ``hint`` is
    the previous frame's ``track`` (12 numbers, FaceTracker's state) or a box [x1, y1, x2, y2]
    another detector found. See ``describe``."""
    return describe(_tracker().find(image, hint), index=index, shape=image.shape)


def describe(found: Tracked | None, *, index: int, shape: tuple[int, ...]) -> dict[str, Any]:
    """A frame's tracked face as JSON-serialisable numbers: face box/score/5 points (for
    alignment), 68 landmarks (liveness), EAR, yaw, and ``track`` (the next frame's hint)."""
    from recognition.pipeline.liveness import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio, head_yaw

    result: dict[str, Any] = {"index": index, "face": found is not None, "shape": list(shape[:2])}
    if found is None:
        return result
    points = found.points
    result.update(
        detected=found.detected, track=found.state,
        box=[round(float(v), 2) for v in found.face.box], score=round(found.face.score, 4),
        landmarks=np.round(found.face.landmarks, 2).tolist(), points=points.astype(int).tolist(),
        ear=round((eye_aspect_ratio(points[LEFT_EYE]) + eye_aspect_ratio(points[RIGHT_EYE])) / 2, 4),
        yaw=round(head_yaw(points), 4))
    return result


def face_of(result: dict[str, Any]):  # noqa: ANN201 - recognition.pipeline.detection.Face
    from recognition.pipeline.detection import Face

    return Face(box=tuple(result["box"]), score=result["score"], landmarks=np.asarray(result["landmarks"], np.float32))


def view_extras(image: np.ndarray, result: dict[str, Any]) -> dict[str, str | None]:
    """What the monitor and learning need of a view: its thumbnail JPEG and aligned crop (PNG), base64."""
    from attendance.services import _thumbnail
    from recognition.engine import get_pipeline
    from recognition.learning_harvest import aligned_crop

    face = face_of(result)
    crop = aligned_crop(get_pipeline().embedder, image, face)
    png = None if crop is None else cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))[1].tobytes()
    return {"thumbnail": _b64(_thumbnail(image, face)), "crop": None if png is None else _b64(png)}


def analyse_frame(data: bytes, *, index: int, hint: list[float] | None, embed: bool) -> dict[str, Any]:
    """One JPEG of a streamed burst (the task ``attendance.burst_frame``): ``analyse_image``, and
    with ``embed`` (and a face) the view's vector, thumbnail and aligned crop too."""
    from recognition.engine import get_pipeline
    from recognition.services import decode_frame

    image = decode_frame(data)
    result = analyse_image(image, index=index, hint=hint)
    if embed and result["face"]:
        vector = get_pipeline().embedder.embed_pairs([(image, face_of(result))])[0]
        result.update(vector=[float(v) for v in vector], **view_extras(image, result))
    return result


class BurstStream:
    """A burst's frame results as they arrive, and its decision.

    ``plan(index, box)`` -> (hint, embed): what to track frame ``index`` from and whether to embed
    it now (views chosen on the fly: up to BURST_VIEWS spread over the burst's expected length
    with open eyes; for a head-turn challenge the frontal frames); ``add(result)``; at the end
    ``pending()`` names views still to embed (the REST path embeds them all in one batch; a stream
    tops up views it fell short of), ``attach`` their vectors, and ``decide()`` gives the ``_Seen``.
    """

    def __init__(self, fps: float = 12.0, challenge: str | None = None, *, expected: int | None = None,
                 turning: bool | None = None) -> None:
        self.fps = fps
        self.challenge = challenge
        self.turning = bool(challenge) if turning is None else turning
        self.expected = expected or max(2, round(fps * BURST_SECONDS))
        self.results: dict[int, dict[str, Any]] = {}
        self.planned: set[int] = set()

    @classmethod
    def from_results(cls, results: list[dict[str, Any]], *, fps: float, challenge: str | None,
                     planned: list[int]) -> BurstStream:
        stream = cls(fps, challenge)
        stream.results = {r["index"]: r for r in results}
        stream.planned = set(planned)
        return stream

    @property
    def frames(self) -> int:
        return max(self.results) + 1 if self.results else 0

    def _previous(self, index: int) -> dict[str, Any] | None:
        earlier = [i for i in self.results if i < index and self.results[i]["face"]]
        return self.results[max(earlier)] if earlier and index - max(earlier) <= REACH else None

    def _open_level(self) -> float | None:
        ears = [r["ear"] for r in self.results.values() if r["face"]]
        return float(np.percentile(ears, 80)) if len(ears) >= 3 else None

    def _good_view(self, result: dict[str, Any]) -> bool:
        if not result["face"]:
            return False
        if self.turning:
            return abs(result["yaw"]) <= FRONTAL
        level = self._open_level()
        return level is None or result["ear"] >= CLOSED_RATIO * level

    def _live_views(self) -> list[int]:
        return sorted(i for i in self.planned if i not in self.results or self._good_view(self.results[i]))

    def plan(self, index: int, box: list[float] | None = None) -> tuple[list[float] | None, bool]:
        previous = self._previous(index)
        hint = previous["track"] if previous is not None else box
        views = self._live_views()
        embed = False
        if len(views) < BURST_VIEWS and (not views or index - views[-1] >= 2):
            if self.turning:
                embed = previous is None or self._good_view(previous)
            else:
                # The last view a few frames before the end: a stream's answer need not wait for it.
                span = self.expected - 1 - min(3, self.expected // 8)
                slot = round(len(views) * span / max(1, BURST_VIEWS - 1))
                embed = index >= slot and (previous is None or self._good_view(previous) or index >= slot + 2)
        if embed:
            self.planned.add(index)
        return hint, embed

    def add(self, result: dict[str, Any]) -> None:
        self.results[result["index"]] = result
        if result["index"] in self.planned and not self._good_view(result):
            self.planned.discard(result["index"])

    def views(self) -> list[int]:
        """The views the decision uses: the planned ones, topped up (when the burst is over and
        fewer were planned than it allows) by the most frontal or the most spread-out faces."""
        faces = [i for i, r in sorted(self.results.items()) if r["face"]]
        chosen = [i for i in self._live_views() if i in self.results]
        want = min(BURST_VIEWS, len(faces))
        spare = [i for i in faces if i not in chosen]
        while len(chosen) < want and spare:
            if self.turning:
                pick = min(spare, key=lambda i: abs(self.results[i]["yaw"]))
            else:
                good = [i for i in spare if self._good_view(self.results[i])] or spare
                pick = max(good, key=lambda i: min((abs(i - c) for c in chosen), default=0))
            chosen.append(pick)
            spare.remove(pick)
            self.planned.add(pick)
        return sorted(chosen)

    def middle(self) -> int | None:
        views = self.views()
        return views[len(views) // 2] if views else None

    def pending(self) -> list[int]:
        """Views without a vector yet."""
        return [i for i in self.views() if self.results[i].get("vector") is None]

    def attach(self, index: int, vector: np.ndarray | list[float], **extras: str | None) -> None:
        self.results[index].update(vector=[float(v) for v in vector], **extras)

    def points(self) -> list[np.ndarray | None]:
        return [np.asarray(self.results[i]["points"], dtype=np.float32)
                if i in self.results and self.results[i]["face"] else None for i in range(self.frames)]

    def decide(self) -> _Seen:
        """Who is in the burst and are they live: the rules of a whole-burst check-in (each
        enrolled person's score their mean over the views, GalleryIndex.decide_burst; enough views;
        liveness from the frames' landmarks by LivenessChecker's rules, for known and unknown faces
        alike; learning and strangers)."""
        from django.conf import settings

        from attendance.services import LIVENESS_HINTS, NO_FACE_MESSAGE, UNKNOWN_MESSAGE, KioskOutcome, _Seen
        from portal.models import Employee
        from recognition.engine import get_liveness_checker
        from recognition.learning_harvest import SafeBurst, burst_safety, clear_stranger
        from recognition.selectors import gallery_index_and_threshold

        if not self.results:
            return _Seen(KioskOutcome("no_face", "No picture arrived from the camera."))
        views = [i for i in self.views() if self.results[i].get("vector") is not None]
        if not views:
            return _Seen(KioskOutcome("no_face", NO_FACE_MESSAGE))
        vectors = np.asarray([self.results[i]["vector"] for i in views], dtype=np.float32)
        middle = self.results[views[len(views) // 2]]
        thumbnail = base64.b64decode(middle["thumbnail"]) if middle.get("thumbnail") else None
        index, threshold = gallery_index_and_threshold()  # one version's index with its own threshold
        decision = index.decide_burst(vectors, threshold=threshold)
        employee = None
        if decision.known and decision.best is not None and len(vectors) * 2 >= min(BURST_VIEWS, self.frames):
            employee = Employee.objects.filter(pk=decision.best.label, is_active=True).first()
        closest = decision.best.score if decision.best is not None else None
        liveness = "off"
        if settings.ROLLCALL_LIVENESS != "off":
            checker = get_liveness_checker()
            # A challenge (a screen asked for a head turn) is verified by head pose; without one the
            # burst must show a blink (door units have no screen to ask on). Liveness comes first,
            # whoever the face is: a photo held up is refused alike whether or not its face is
            # enrolled, so the door never tells a caller who is (recognize hides that too).
            result = (checker.turn_from_points(self.points(), self.challenge, frames=self.frames) if self.challenge
                      else checker.check_points(self.points(), self.fps))
            liveness = result.reason
            if not result.live:
                hint = LIVENESS_HINTS.get(result.reason, LIVENESS_HINTS["no_blink"])
                if employee is None:
                    return _Seen(KioskOutcome("liveness_failed", hint, liveness=liveness, similarity=closest),
                                 similarity=closest, liveness=liveness, thumbnail=thumbnail)
                return _Seen(KioskOutcome("liveness_failed", hint, employee.pk, employee.full_name, liveness=liveness,
                                          similarity=closest), employee, closest, liveness, thumbnail)
        if employee is None:
            stranger = vectors if clear_stranger(closest, threshold=threshold) else None  # no near miss of a person
            return _Seen(KioskOutcome("unknown", UNKNOWN_MESSAGE, similarity=closest), thumbnail=thumbnail,
                         stranger=stranger)
        similarity = closest
        learn = None
        proven = settings.ROLLCALL_LIVENESS != "off" or settings.ROLLCALL_LEARN_WITHOUT_LIVENESS  # live, or so allowed
        if proven and (safety := burst_safety(index, vectors, decision, threshold=threshold)) is not None:
            crop = None
            if middle.get("crop"):
                crop = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(middle["crop"]), np.uint8),
                                                 cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            learn = SafeBurst(vectors=vectors, crop=crop, score=safety[0], gap=safety[1])
        return _Seen(None, employee, similarity, liveness, thumbnail, learn=learn)


def look_at_images(images: list[np.ndarray], fps: float, challenge: str | None = None) -> _Seen:
    """The whole-burst (REST) path: every frame's face tracked (``FaceTracker.find_many``: the
    same faces as the stream's frame-by-frame ``analyse_image``, each from the last face at most
    three frames before), the views planned in order, the chosen ones embedded in one batch, then
    ``BurstStream.decide``."""
    from recognition.engine import get_pipeline

    stream = BurstStream(fps, challenge, expected=len(images))
    for index, (image, found) in enumerate(zip(images, _tracker().find_many(images, reach=REACH), strict=True)):
        stream.plan(index)
        stream.add(describe(found, index=index, shape=image.shape))
    pending = stream.pending()
    if pending:
        vectors = get_pipeline().embedder.embed_pairs([(images[i], face_of(stream.results[i])) for i in pending])
        for i, vector in zip(pending, vectors, strict=True):
            stream.attach(i, vector)
        middle = stream.middle()
        stream.results[middle].update(view_extras(images[middle], stream.results[middle]))
    return stream.decide()


class BurstError(Exception):
    """A typed protocol error of a streamed burst (``code``, ``detail``)."""

    def __init__(self, detail: str, code: str = "bad_request") -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


class StreamedBurst:
    """One open stream on a socket: ``feed`` each frame as it arrives (analysed at once, off the
    caller's thread, in order: ROLLCALL_BURST_PIPELINE at a time), ``finish`` at burst_end (waits
    for the frames still in work, tops up views, then ``submit(results, planned, frames)`` — the
    decision and the write). ``on_error(exc)`` is called once, from a worker thread, when a frame
    fails; the stream is then ``failed`` and ignores its further frames."""

    def __init__(self, *, fps: float, turning: bool, on_error: Callable[[Exception], None] | None = None,
                 replay: bool = False) -> None:
        from django.conf import settings

        self.stream = BurstStream(fps, turning=turning)
        self.replay = replay  # a key already answered: its frames need no work
        self.received = 0
        self.failed: Exception | None = None
        self._frames: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._futures: list[Future] = []
        self._on_error = on_error
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.ROLLCALL_BURST_PIPELINE),
                                        thread_name_prefix="burst")

    def feed(self, index: int, data: bytes, box: list[float] | None = None) -> None:
        if index != self.received:
            raise BurstError(f"frames must arrive in capture order: expected index {self.received}.")
        if self.received >= BURST_MAX_FRAMES:
            raise BurstError(f"a burst carries at most {BURST_MAX_FRAMES} frames.", code="too_many_frames")
        self.received += 1
        if self.replay or self.failed is not None:
            return
        self._frames[index] = data
        self._futures.append(self._pool.submit(self._analyse, index, data, box))

    def _analyse(self, index: int, data: bytes, box: list[float] | None, embed: bool | None = None) -> None:
        from django.db import close_old_connections

        from recognition.jobs import run, stage

        if self.failed is not None:
            return
        try:
            with self._lock:
                if embed is None:
                    hint, embed = self.stream.plan(index, box)
                else:
                    hint = self.stream.results[index].get("track")
            result = run("attendance.burst_frame", staged=stage(data), index=index, hint=hint, embed=embed)
            with self._lock:
                self.stream.add(result)
        except Exception as exc:  # noqa: BLE001 - reported to the socket once, typed
            with self._lock:
                first = self.failed is None
                self.failed = self.failed or exc
            if first and self._on_error is not None and not self._closed:  # a closed stream's caller has its answer
                self._on_error(exc)
        finally:
            close_old_connections()

    def finish(self, frames: int,
               submit: Callable[[list[dict[str, Any]], list[int], int], dict[str, Any]]) -> dict[str, Any]:
        """Blocking: the decision's answer (``submit``'s), or raises the stream's error."""
        try:
            if frames != self.received:
                raise BurstError(f"burst_end says {frames} frames; {self.received} arrived.")
            for future in self._futures:
                future.result()
            if self.failed is not None:
                raise self.failed
            if not self.replay:
                with self._lock:
                    top_up = self.stream.pending()
                for future in [self._pool.submit(self._analyse, i, self._frames[i], None, True) for i in top_up]:
                    future.result()
                if self.failed is not None:
                    raise self.failed
            results = [self.stream.results[i] for i in sorted(self.stream.results)]
            return submit(results, sorted(self.stream.planned), self.received)
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._frames.clear()
