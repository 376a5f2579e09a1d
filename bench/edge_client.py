"""Edge client cost per frame on this machine: detection + tracking, and the burst's crop + JPEG.

    .venv/bin/python bench/edge_client.py [--data ../shared/data] [--threads 1] [--json FILE]

Videos: the project's fixture (360x640, one face), and from ../shared/data when present the
Hamilton clip (640x360, several faces) and the 1080p crowd clip (downscaled to 640 px wide for
detection, as the client does). CPU time is the process's (all threads); with ``--threads 1``
OpenCV uses one thread, which is what a Jetson Nano core gives. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
from tqdm import tqdm  # noqa: E402

from edge_client.client import CROP_MAX_SIDE, crop_region, jpeg  # noqa: E402
from edge_client.detector import HaarDetector, MtcnnDetector, largest  # noqa: E402
from edge_client.tracker import Tracker  # noqa: E402


def frames_of(path: Path, limit: int) -> list:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def measure(detector, frames: list) -> dict[str, float]:
    tracker = Tracker()
    cpu, wall, crop_cpu, faces = [], [], [], 0
    for index, frame in enumerate(frames):
        c0, w0 = time.process_time(), time.perf_counter()
        found = detector.detect(frame)
        tracker.update(found, index / 25)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        faces += len(found)
        face = largest(found)
        if face is not None:  # what a burst adds per captured frame
            c0 = time.process_time()
            left, top, right, bottom = crop_region(face.box, frame.shape)
            crop = frame[top:bottom, left:right]
            scale = min(1.0, CROP_MAX_SIDE / max(crop.shape[:2]))
            jpeg(cv2.resize(crop, None, fx=scale, fy=scale) if scale < 1 else crop)
            crop_cpu.append(time.process_time() - c0)
    return {"frames": len(frames), "faces_per_frame": faces / max(1, len(frames)),
            "cpu_ms": 1000 * statistics.median(cpu), "wall_ms": 1000 * statistics.median(wall),
            "burst_frame_cpu_ms": 1000 * statistics.median(crop_cpu) if crop_cpu else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (0 = OpenCV's default)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    videos = {"fixture 360x640 (1 face)": ROOT / "attendance" / "fixtures" / "blink_2s.mp4"}
    if args.data.is_dir():
        videos["hamilton 640x360 (stage)"] = args.data / "video" / "hamilton_short_clip.mp4"
        videos["crowd 1920x1080 (many)"] = args.data / "video" / "crowd_walking_4s_1080p.mp4"
    else:
        print(f"({args.data} absent: only the project's fixture video is measured)")
    detectors = {"mtcnn (cv2.dnn)": lambda: MtcnnDetector(min_face=40), "haar": lambda: HaarDetector(min_face=40)}
    rows = []
    for (video, path), (name, make) in tqdm([(v, d) for v in videos.items() for d in detectors.items()], desc="edge bench"):
        frames = frames_of(path, args.frames)
        detector = make()
        detector.detect(frames[0])  # warm-up
        rows.append({"video": video, "detector": name, **measure(detector, frames)})
    print(f"\nEdge client per frame, OpenCV threads={args.threads or cv2.getNumThreads()} "
          f"(median; CPU = process time, all threads)")
    print(f"{'video':28} {'detector':16} {'faces/fr':>8} {'CPU ms':>7} {'wall ms':>8} {'max fps':>8} {'burst +ms':>9}")
    for row in rows:
        print(f"{row['video']:28} {row['detector']:16} {row['faces_per_frame']:8.1f} {row['cpu_ms']:7.1f} "
              f"{row['wall_ms']:8.1f} {1000 / row['wall_ms']:8.1f} {row['burst_frame_cpu_ms']:9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
