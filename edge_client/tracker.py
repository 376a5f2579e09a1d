"""Simple multi-face tracking by box overlap, so that a person standing at the door is one visit:
a track lives while its face keeps being detected, survives short detection gaps, and ends after
``max_gap`` seconds unseen. The client sends one check-in per track."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from edge_client.detector import Box, Detection


def iou(a: Box, b: Box) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _near(a: Box, b: Box) -> bool:
    """Centres within half a face width: the same face moved quickly between two detections."""
    ax, ay = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    width = max(a[2] - a[0], b[2] - b[0])
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 < 0.5 * width


def _similar_size(a: Box, b: Box, ratio: float = 1.4) -> bool:
    wa, wb = a[2] - a[0], b[2] - b[0]
    return max(wa, wb) <= ratio * min(wa, wb)


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    sent: bool = False
    seen_now: bool = True
    history: list[Box] = field(default_factory=list)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class Tracker:
    def __init__(self, max_gap: float = 4.0, min_iou: float = 0.3) -> None:
        self.max_gap, self.min_iou = max_gap, min_iou
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(self, detections: list[Detection], now: float) -> list[Track]:
        """Match this frame's detections to tracks (greedy, best overlap first); returns the
        tracks seen in this frame. Tracks unseen for longer than ``max_gap`` are dropped."""
        for track in self.tracks:
            track.seen_now = False
        pairs = sorted(((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks) for di, d in enumerate(detections)),
                       reverse=True)
        used_tracks, used_detections = set(), set()
        for overlap, ti, di in pairs:
            if ti in used_tracks or di in used_detections:
                continue
            if not _similar_size(self.tracks[ti].box, detections[di].box):
                continue  # another person's face (nearer or further away), not this one moving
            if overlap < self.min_iou and not _near(self.tracks[ti].box, detections[di].box):
                continue
            track = self.tracks[ti]
            track.box, track.last_seen, track.seen_now = detections[di].box, now, True
            track.hits += 1
            used_tracks.add(ti)
            used_detections.add(di)
        for di, detection in enumerate(detections):
            if di not in used_detections:
                self.tracks.append(Track(next(self._ids), detection.box, now, now))
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.max_gap]
        return [t for t in self.tracks if t.seen_now]
