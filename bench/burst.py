"""How long a check-in burst takes to decide, against one frame's recognition, in the same run.

    .venv/bin/python bench/burst.py [--data ../shared/data] [--json FILE] [--repeats N] [--no-socket]

(a) One frame's recognition (decode, MTCNN, alignment, embedding, gallery search) and a 24-frame
    burst's decision through the REST path (``attendance.services._look``: tracking, liveness, five
    views in one batch), their ratio (issue 14's target: at most 5), and for reference the burst
    decided as before tracking (MTCNN on five spread frames and on every frame for liveness).
(b) A streamed burst: frames fed at the capture rate (12 fps) into the code the sockets use
    (``attendance.burst.StreamedBurst`` and ``burst_submit``, the decision and its write); the
    latency from the last frame to the answer, p50/p95 (target: 300 ms p50). With a Daphne server
    (started here on a free loopback port, unless ``--no-socket``) the same end to end over a real
    ``/ws/device/`` socket: from sending ``burst_end`` to receiving the decision.

Real frames: 2 s windows (24 frames at 12 fps) of the shared blink video
(video/blink_selfie_14s.mp4, one person who blinks), enrolled from its first frame. Without
../shared/data the shipped fixture attendance/fixtures/blink_2s.mp4 (one window) is used instead.
Embedded mode in a throw-away SQLite database and media folder; the lead runs the full figures on
a quiet machine (this 2-core box is shared: run it with --repeats 1 or 2 to see that it works).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from liveness import read_video  # noqa: E402 - bench/liveness.py, beside this file

FPS = 12.0


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def bursts_of(data: Path) -> tuple[list[list[bytes]], bytes, str]:
    """24-frame windows at 12 fps (one a second), the enrolment photo, and where they came from."""
    video = data / "video" / "blink_selfie_14s.mp4"
    if not video.is_file():
        print(f"{video} not found (../shared/data is absent): using the shipped fixture attendance/fixtures/blink_2s.mp4")
        video = ROOT / "attendance" / "fixtures" / "blink_2s.mp4"
    frames, fps = read_video(video)
    step = max(1, round(fps / FPS))
    size = int(round(2 * FPS)) * step
    windows = [[jpeg(f) for f in frames[start:start + size:step]]
               for start in range(step, len(frames) - size + 1, int(round(fps)))]
    return windows or [[jpeg(f) for f in frames[:size:step]]], jpeg(frames[0]), video.name


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def single_frame(data: bytes) -> float:
    from recognition.engine import get_pipeline
    from recognition.selectors import gallery_index
    from recognition.services import decode_upload

    start = time.perf_counter()
    pipeline = get_pipeline()
    image = decode_upload(data)
    faces = pipeline.detector.detect(image)
    main = max(faces, key=lambda f: f.width * f.height)
    vectors, _ = pipeline.embedder.embed_faces(image, [main])
    gallery_index().search(vectors, k=1)
    return time.perf_counter() - start


def legacy_burst(frames: list[bytes]) -> tuple[float, str]:
    """The burst decided as before tracking: MTCNN on five spread frames (one embedding batch) and
    on every frame for liveness."""
    from recognition.engine import get_liveness_checker, get_pipeline, match_threshold
    from recognition.selectors import gallery_index
    from recognition.services import decode_upload

    start = time.perf_counter()
    pipeline = get_pipeline()
    images = [decode_upload(f) for f in frames]
    picks = sorted({round(i * (len(images) - 1) / 4) for i in range(5)})
    pairs = [(images[i], max(faces, key=lambda f: f.width * f.height)) for i in picks
             if (faces := pipeline.detector.detect(images[i]))]
    gallery_index().decide_burst(pipeline.embedder.embed_pairs(pairs), threshold=match_threshold())
    reason = get_liveness_checker().check(images, FPS).reason
    return time.perf_counter() - start, reason


def rest_burst(frames: list[bytes]) -> tuple[float, str]:
    from attendance.services import _look

    start = time.perf_counter()
    seen = _look(frames, FPS)
    elapsed = time.perf_counter() - start
    return elapsed, seen.outcome.outcome if seen.outcome else f"recognised, liveness {seen.liveness}"


def streamed(frames: list[bytes], device: object, *, drained: bool = False) -> tuple[float, str]:
    """Frames fed at 12 fps into StreamedBurst; seconds from the last frame to the answer. With
    ``drained`` the clock starts once every frame has been worked on: the work left at burst_end
    when the server keeps up with the camera (on a loaded machine it falls behind, and the first
    figure includes that backlog)."""
    from attendance.burst import StreamedBurst
    from attendance.services import burst_submit

    burst = StreamedBurst(fps=FPS, turning=False)
    key = uuid.uuid4().hex[:24]
    began = time.perf_counter()
    for index, frame in enumerate(frames):
        time.sleep(max(0.0, began + index / FPS - time.perf_counter()))
        burst.feed(index, frame)
    if drained:
        for future in list(burst._futures):
            future.result()
    last = time.perf_counter()
    answer = burst.finish(len(frames), lambda results, planned, count: burst_submit(
        results=results, planned=planned, fps=FPS, device=device, key=key))
    return time.perf_counter() - last, str(answer.get("outcome"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def through_daphne(bursts: list[list[bytes]], token: str, env: dict[str, str], repeats: int) -> dict[str, object]:
    """The device socket end to end: a real Daphne process, frames sent at 12 fps, the time from
    burst_end to the decision."""
    import websocket

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        client = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/device/", timeout=120,
                                             header=[f"Authorization: Device {token}"], origin=f"http://127.0.0.1:{port}")
        assert json.loads(client.recv())["type"] == "hello"
        latencies, outcomes = [], []
        for run in range(repeats + 1):  # the first burst warms the server's models up, uncounted
            for frames in bursts if run else bursts[:1]:
                key = uuid.uuid4().hex[:24]
                client.send(json.dumps({"type": "burst_start", "key": key, "fps": FPS}))
                assert json.loads(client.recv())["type"] == "burst_started"
                began = time.perf_counter()
                for index, frame in enumerate(frames):
                    time.sleep(max(0.0, began + index / FPS - time.perf_counter()))
                    client.send(json.dumps({"type": "frame", "key": key, "index": index,
                                            "jpeg": base64.b64encode(frame).decode()}))
                client.send(json.dumps({"type": "burst_end", "key": key, "frames": len(frames)}))
                sent = time.perf_counter()
                answer = json.loads(client.recv())
                if run:
                    latencies.append(time.perf_counter() - sent)
                    outcomes.append(answer.get("answer", {}).get("outcome") or answer.get("code"))
        client.close()
        return {"p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
                "bursts": len(latencies), "outcomes": outcomes}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the bursts (default 5)")
    parser.add_argument("--windows", type=int, default=0, help="only the first N 2 s windows (0: all)")
    parser.add_argument("--no-socket", action="store_true", help="skip the end-to-end Daphne socket figures")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rollcall-burst-"))
    env = {**os.environ, "ROLLCALL_VAR_DIR": str(work), "MEDIA_ROOT": str(work / "media"),
           "DJANGO_SETTINGS_MODULE": "portal.settings", "ROLLCALL_LIVENESS": "blink",
           "ATTENDANCE_REPEAT_WINDOW_SECONDS": "0", "PYTHONPATH": str(ROOT)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)  # embedded mode: tasks run in-process, on this machine's CPU
    os.environ.update(env)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    from portal.models import Employee
    from portal.services import device_create
    from recognition.engine import get_pipeline
    from recognition.services import face_enroll

    call_command("migrate", verbosity=0)
    bursts, photo, source = bursts_of(args.data)
    if args.windows:
        bursts = bursts[: args.windows]
    person = Employee.objects.create(code="S", full_name="Sam Selfie")
    face_enroll(employee=person, data=photo)
    faces = ROOT / "recognition" / "fixtures" / "faces" / "people"
    for number, folder in enumerate(sorted(p for p in faces.iterdir() if p.is_dir())):  # others in the gallery
        other = Employee.objects.create(code=f"P{number}", full_name=folder.name)
        face_enroll(employee=other, data=sorted(folder.glob("*.jp*g"))[0].read_bytes())
    device, token = device_create(name="Bench door")
    print(f"{len(bursts)} bursts of {len(bursts[0])} frames from {source}; embedder {get_pipeline().embedder.key}; "
          f"{args.repeats} repeats")

    # Warm-up: every model loaded and run once.
    single_frame(bursts[0][0])
    rest_burst(bursts[0])
    single, rest, legacy, outcomes = [], [], [], []
    for _ in range(args.repeats):
        for frames in bursts:
            for frame in frames[:: max(1, len(frames) // 4)]:
                single.append(single_frame(frame))
            elapsed, outcome = rest_burst(frames)
            rest.append(elapsed)
            outcomes.append(outcome)
            legacy.append(legacy_burst(frames)[0])
    one, whole, before = statistics.median(single), statistics.median(rest), statistics.median(legacy)
    figures: dict[str, object] = {
        "frames_per_burst": len(bursts[0]), "bursts": len(bursts), "repeats": args.repeats, "source": source,
        "single_frame_ms": 1000 * one, "rest_burst_ms": 1000 * whole, "ratio": whole / one,
        "rest_burst_before_tracking_ms": 1000 * before, "ratio_before_tracking": before / one,
        "rest_outcomes": {o: outcomes.count(o) for o in set(outcomes)}}
    print(f"\n(a) one frame (detect+align+embed+search): {1000 * one:.0f} ms median of {len(single)}")
    print(f"    REST burst decision ({len(bursts[0])} frames):   {1000 * whole:.0f} ms median of {len(rest)}"
          f"  -> ratio {whole / one:.1f} (target <= 5)")
    print(f"    before tracking (MTCNN each frame):  {1000 * before:.0f} ms -> ratio {before / one:.1f}")
    print(f"    outcomes: {figures['rest_outcomes']}")

    latencies, left, stream_outcomes = [], [], []
    for _ in range(args.repeats):
        for frames in bursts:
            elapsed, outcome = streamed(frames, device)
            latencies.append(elapsed)
            stream_outcomes.append(outcome)
            left.append(streamed(frames, device, drained=True)[0])
    figures["streamed"] = {"p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
                           "work_left_p50_ms": 1000 * percentile(left, 50), "work_left_p95_ms": 1000 * percentile(left, 95),
                           "bursts": len(latencies), "outcomes": {o: stream_outcomes.count(o) for o in set(stream_outcomes)}}
    print(f"\n(b) streamed at {FPS:g} fps, last frame -> answer (decision and write): "
          f"p50 {figures['streamed']['p50_ms']:.0f} ms, p95 {figures['streamed']['p95_ms']:.0f} ms "
          f"over {len(latencies)} bursts (target p50 <= 300 ms); outcomes {figures['streamed']['outcomes']}")
    print(f"    work left at burst_end once the frames are analysed: p50 {figures['streamed']['work_left_p50_ms']:.0f} ms, "
          f"p95 {figures['streamed']['work_left_p95_ms']:.0f} ms")
    if not args.no_socket:
        from django.db import connection

        connection.close()
        figures["socket"] = through_daphne(bursts, token, env, args.repeats)
        print(f"    end to end over /ws/device/ (real Daphne): burst_end -> decision p50 {figures['socket']['p50_ms']:.0f} ms, "
              f"p95 {figures['socket']['p95_ms']:.0f} ms over {figures['socket']['bursts']} bursts")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
