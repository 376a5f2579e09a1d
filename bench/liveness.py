"""Liveness figures on ../shared/data: blink precision/recall, and which attacks pass.

    .venv/bin/python bench/liveness.py [--data ../shared/data] [--json FILE] [--plot FILE.png] [--track]
                                     [--max-frames N]

Blinks: the eye-aspect-ratio detector runs over the whole of video/blink_selfie_14s.mp4 and
blink_glasses_3s_96x128.mp4; a detected blink is a true positive when it overlaps an annotated
blink (+/-1 frame). Attacks: each still in spoof/ is sent as a 2 s burst of the same frame; the
live and replayed videos of spoof/replay_pair are sent as their first 2 s. With ``--track`` the
landmarks come from the face tracked frame to frame (recognition.pipeline.tracking, what check-ins
use) instead of MTCNN on every frame. ``--max-frames N`` reads only the first N frames of each
video (a quick look; blinks annotated beyond them do not count).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from recognition.pipeline.detection import MtcnnDetector  # noqa: E402
from recognition.pipeline.image import load_image  # noqa: E402
from recognition.pipeline.liveness import LEFT_EYE, RIGHT_EYE, LivenessChecker, eye_aspect_ratio, find_blinks  # noqa: E402


def read_video(path: Path, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


def blink_figures(checker: LivenessChecker, video: Path, annotations: list[dict[str, str]],
                  track: bool = False, max_frames: int | None = None) -> dict[str, object]:
    frames, fps = read_video(video, max_frames)
    points = checker.landmarks_per_frame(tqdm(frames, desc=video.name, unit="frame", leave=False), track=track)
    ear = np.array([np.nan if p is None else (eye_aspect_ratio(p[LEFT_EYE]) + eye_aspect_ratio(p[RIGHT_EYE])) / 2
                    for p in points])
    found = find_blinks(ear, fps)
    annotations = [a for a in annotations if int(a["start_frame"]) < len(frames)]
    truth = [(int(a["start_frame"]), int(a["end_frame"])) for a in annotations if a["event"] == "blink"]
    closures = [(int(a["start_frame"]), int(a["end_frame"])) for a in annotations if a["event"] == "long_closure"]

    def overlaps(blink, span) -> bool:
        return blink.start <= span[1] + 1 and blink.end >= span[0] - 1

    short = [b for b in found if not b.long]
    true_positive = sum(any(overlaps(b, t) for t in truth) for b in short)
    recalled = sum(any(overlaps(b, t) for b in short) for t in truth)
    long_found = sum(any(overlaps(b, c) for b in found if b.long) for c in closures)
    return {
        "video": video.name, "frames": len(frames), "fps": fps, "faces_found": int(np.sum(~np.isnan(ear))),
        "annotated_blinks": len(truth), "detected_blinks": len(short),
        "precision": true_positive / len(short) if short else 0.0,
        "recall": recalled / len(truth) if truth else 0.0,
        "annotated_long_closures": len(closures), "long_closures_found": long_found,
        "detected": [[b.start, b.end, b.long] for b in found], "ear": [None if np.isnan(v) else round(float(v), 4) for v in ear],
    }


def challenge_figures(checker: LivenessChecker, data: Path, attacks: list[dict], track: bool = False,
                      max_frames: int | None = None) -> dict[str, object]:
    """How often natural footage (nobody asked to turn) passes a head-turn challenge: every 2.5 s
    window (1 s apart) of the shared videos, asked both ways. A replayed video passes only when it
    happens to turn the way a random challenge asks."""
    videos = [data / "video" / "blink_selfie_14s.mp4", data / "video" / "hamilton_short_clip.mp4",
              *sorted((data / "spoof" / "replay_pair").glob("*.mp4"))]
    rows = []
    for video in videos:
        frames, fps = read_video(video, max_frames)
        points = checker.landmarks_per_frame(tqdm(frames, desc=f"challenge {video.name}", unit="frame", leave=False),
                                             track=track)
        size, stride = int(round(2.5 * fps)), int(round(fps))
        passed = both = windows = 0
        for start in range(0, max(1, len(frames) - size + 1), stride):
            window = points[start:start + size]
            results = [checker.turn_from_points(window, direction, frames=len(window)).live for direction in ("left", "right")]
            windows += 1
            passed += sum(results)
            both += all(results)
        rows.append({"video": video.name, "windows": windows, "passed": passed, "both": both})
    turn = ROOT / "attendance" / "fixtures" / "turn_2s.mp4"
    frames, _ = read_video(turn)
    fixture = {d: checker.check_turn(frames, d, track=track).reason for d in ("right", "left")}
    stills = [a for a in attacks if a["burst"].startswith("one still")]
    refused = sum(not checker.check_turn([load_image(data / "spoof" / a["path"])] * 30, "left", track=track).live
                  for a in stills)
    return {"videos": rows, "fixture": fixture, "stills": len(stills), "stills_refused": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="EAR over time with annotated and detected blinks (PNG)")
    parser.add_argument("--track", action="store_true", help="landmarks of the face tracked frame to frame")
    parser.add_argument("--max-frames", type=int, help="only the first N frames of each video (a quick look)")
    args = parser.parse_args()
    if not (args.data / "video" / "blink_annotations.csv").is_file():
        sys.exit(f"{args.data}/video/blink_annotations.csv not found: this benchmark needs ../shared/data")
    checker = LivenessChecker(detector=MtcnnDetector(min_face_size=20))
    with open(args.data / "video" / "blink_annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    blinks = []
    for video in sorted({r["video"] for r in rows}):
        blinks.append(blink_figures(checker, args.data / "video" / video, [r for r in rows if r["video"] == video],
                                     track=args.track, max_frames=args.max_frames))
    attacks = []
    with open(args.data / "spoof" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = args.data / "spoof" / row["path"]
            if path.suffix.lower() == ".mp4":
                frames, fps = read_video(path, max_frames=60)
                frames, kind = frames[: int(round(2 * fps))], "first 2 s of the video"
            else:
                frames, fps, kind = [load_image(path)] * 48, 24.0, "one still repeated for 2 s"
            result = checker.check(frames, fps, track=args.track)
            attacks.append({"path": row["path"], "label": row["label"], "attack": row["attack_type"], "burst": kind,
                            "passed": result.live, "reason": result.reason, "blinks": result.blinks,
                            "motion": round(result.motion, 5)})
    challenge = challenge_figures(checker, args.data, attacks, track=args.track, max_frames=args.max_frames)
    for b in blinks:
        print(f"{b['video']}: {b['faces_found']}/{b['frames']} frames with a face; blinks annotated {b['annotated_blinks']}, "
              f"detected {b['detected_blinks']}; precision {b['precision']:.2f}, recall {b['recall']:.2f}; "
              f"long closures found {b['long_closures_found']}/{b['annotated_long_closures']}")
    print(f"\n{'sample':42} {'label':6} {'attack':16} {'passes?':8} reason (blinks, motion)")
    for a in attacks:
        print(f"{a['path']:42} {a['label']:6} {a['attack']:16} {'PASSES' if a['passed'] else 'refused':8} "
              f"{a['reason']} ({a['blinks']}, {a['motion']})")
    print("\nHead-turn challenge (the person must turn the way the screen asked; passes by chance):")
    for row in challenge["videos"]:
        print(f"  {row['video']:34} {row['windows']:3} windows of 2.5 s x 2 directions: passed {row['passed']}"
              f" ({row['passed'] / (2 * row['windows']):.0%}), both ways in {row['both']}")
    print(f"  fixture turn_2s.mp4 (a real turn to the right): right -> {challenge['fixture']['right']}, "
          f"left -> {challenge['fixture']['left']}")
    print(f"  every spoof still repeated for 2.5 s: refused {challenge['stills_refused']}/{challenge['stills']}")
    if args.json:
        args.json.write_text(json.dumps({"blinks": blinks, "attacks": attacks, "challenge": challenge}, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(blinks), 1, figsize=(10, 3 * len(blinks)), dpi=110, squeeze=False)
        for ax, b, video in zip(axes[:, 0], blinks, sorted({r["video"] for r in rows})):
            ax.plot([np.nan if v is None else v for v in b["ear"]], color="black", lw=1, label="eye aspect ratio")
            for r in rows:
                if r["video"] == video:
                    ax.axvspan(int(r["start_frame"]), int(r["end_frame"]), color="tab:orange" if r["event"] == "blink" else "tab:gray", alpha=0.3)
            for start, end, long in b["detected"]:
                ax.axvspan(start, end + 1, ymax=0.08, color="tab:red" if long else "tab:blue")
            ax.set_title(f"{video}: annotated (orange blink, grey closure), detected (blue blink, red closure)")
            ax.set_xlabel("frame")
        fig.tight_layout()
        fig.savefig(args.plot)


if __name__ == "__main__":
    main()
