"""Per-stage latency of the face pipeline and exact-search time for large galleries.

    .venv/bin/python bench/pipeline.py [--embedder dlib --embedder facenet:checkpoint=PATH] [--json FILE]

Frame: a 640x480 JPEG with one real face (a shipped fixture letterboxed to 640x480).
Stages, medians over --repeat runs after a warm-up: decode, detect, align, embed, search;
``detect+align+embed`` is timed end to end. Search: one query against galleries of random unit
vectors (1k, 10k, 100k, 1M) with GalleryIndex.search(k=5). Networks: each offline network on one
aligned face at batch 1 and 16, in its own runtime and in RollCall's torch / ONNX conversions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from recognition.pipeline.detection import MtcnnDetector  # noqa: E402
from recognition.pipeline.embedding import FusedEmbedder, create_from_spec, l2_normalise  # noqa: E402
from recognition.pipeline.image import load_image  # noqa: E402
from recognition.pipeline.matching import CohortNorm, GalleryIndex  # noqa: E402

FIXTURE = ROOT / "recognition" / "fixtures" / "faces" / "people" / "rose_leslie" / "1.jpg"


def frame_jpeg() -> bytes:
    photo = Image.open(FIXTURE).convert("RGB")
    photo.thumbnail((640, 480))
    canvas = Image.new("RGB", (640, 480), (40, 40, 40))
    canvas.paste(photo, ((640 - photo.width) // 2, (480 - photo.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_stages(spec: str, repeat: int, min_face: int) -> dict[str, float]:
    embedder = create_from_spec(spec)
    detector = MtcnnDetector(min_face_size=min_face)
    data = frame_jpeg()
    image = load_image(data)
    face = detector.detect(image)[0]
    # A fused embedder is timed part by part for alignment and batching; a part embeds every view
    # (each of its aligners' crops, and their mirrors when it mirrors).
    units = [part for part, _ in embedder.parts] if isinstance(embedder, FusedEmbedder) else [embedder]
    views = [[aligner.align(image, face) for aligner in unit.aligners] for unit in units]
    index = GalleryIndex(l2_normalise(np.random.default_rng(0).normal(size=(1000, embedder.dim))), np.arange(1000))
    vector = embedder.embed_face(image, face)

    def end_to_end() -> None:
        found = detector.detect(image)
        embedder.embed_faces(image, found[:1])

    align_ms = median_ms(lambda: [[a.align(image, face) for a in unit.aligners] for unit in units], repeat)
    figures = {
        "decode_ms": median_ms(lambda: load_image(data), repeat),
        "detect_ms": median_ms(lambda: detector.detect(image), repeat),
        "align_ms": align_ms,
        "embed_ms": median_ms(lambda: [unit.embed(crops) for unit, crops in zip(units, views, strict=True)], repeat),
        "search_1k_ms": median_ms(lambda: index.search(vector, k=5), repeat),
        "detect_align_embed_ms": median_ms(end_to_end, repeat),
    }
    batch_repeat = max(3, repeat // 5)
    figures["embed_batch16_ms_per_face"] = sum(
        median_ms(lambda unit=unit, crops=crops: unit.embed(crops * 16), batch_repeat) / 16
        for unit, crops in zip(units, views, strict=True)
    )
    return figures


# Every network RollCall runs offline, each on one aligned crop (no mirror): its own runtime
# against its torch and ONNX Runtime conversions.
MODELS = ["dlib", "dlib-torch", "dlib-onnx", "facenet-casia", "facenet-casia-onnx"]


def bench_models(specs: list[str], repeat: int) -> dict[str, dict[str, float]]:
    image = load_image(frame_jpeg())
    face = MtcnnDetector().detect(image)[0]
    results = {}
    for spec in tqdm(specs, desc="models", unit="model"):
        embedder = create_from_spec(spec)
        crop = embedder.crop(image, face)
        results[spec] = {
            "batch1_ms_per_face": median_ms(lambda e=embedder, c=crop: e.embed([c]), repeat),
            "batch16_ms_per_face": median_ms(lambda e=embedder, c=crop: e.embed([c] * 16), max(3, repeat // 5)) / 16,
        }
    return results


def bench_search(sizes: list[int], dim: int, queries: int) -> tuple[dict[int, float], dict[int, float]]:
    """Median search time per gallery size, and the time to compute the hub-normalisation offsets
    when an index is built (galleries up to ``CohortNorm.max_rows``)."""
    rng = np.random.default_rng(1)
    results, builds = {}, {}
    for size in tqdm(sizes, desc="search galleries", unit="gallery"):
        vectors = np.empty((size, dim), dtype=np.float32)
        for start in range(0, size, 100_000):  # fill in chunks to bound temporary memory
            stop = min(size, start + 100_000)
            vectors[start:stop] = l2_normalise(rng.normal(size=(stop - start, dim)).astype(np.float32))
        index = GalleryIndex(vectors, np.arange(size))
        probes = l2_normalise(rng.normal(size=(queries, dim)).astype(np.float32))
        times = []
        index.search(probes[0], k=5)
        for probe in probes:
            started = time.perf_counter()
            index.search(probe, k=5)
            times.append((time.perf_counter() - started) * 1000)
        results[size] = statistics.median(times)
        if size <= CohortNorm.max_rows:
            started = time.perf_counter()
            CohortNorm().offsets(vectors, index.labels)
            builds[size] = (time.perf_counter() - started) * 1000
        del index, vectors
    return results, builds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", action="append",
                        help="embedder spec, repeatable: NAME[:mirror,align=similarity] (default: fused)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ROLLCALL_TORCH_THREADS", "2")))
    parser.add_argument("--min-face", type=int, default=40, help="MTCNN min_face_size (RollCall's default: 40)")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="gallery sizes for the search benchmark")
    parser.add_argument("--dim", type=int, default=128, help="vector size for the search benchmark")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="networks timed alone at batch 1 and 16 (comma-separated specs; empty: none)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = args.embedder or ["fused"]
    stages = {spec: bench_stages(spec, args.repeat, args.min_face) for spec in tqdm(specs, desc="embedders", unit="embedder")}
    models = bench_models([m for m in args.models.split(",") if m], args.repeat)
    search, builds = bench_search([int(s) for s in args.sizes.split(",")], args.dim, queries=50)

    print(f"\nPipeline on one 640x480 frame with one face ({args.threads} torch threads, medians of {args.repeat}):")
    columns = ["decode_ms", "detect_ms", "align_ms", "embed_ms", "search_1k_ms", "detect_align_embed_ms", "embed_batch16_ms_per_face"]
    print(f"{'embedder':28}" + "".join(f"{c.replace('_ms', ''):>24}" for c in columns))
    for spec, figures in stages.items():
        print(f"{spec:28.28}" + "".join(f"{figures[c]:>21.2f} ms" for c in columns))
    if models:
        print(f"\nEmbedding one aligned face, per face ({args.threads} threads):")
        print(f"{'network':28}{'batch 1':>14}{'batch 16':>14}")
        for spec, figures in models.items():
            print(f"{spec:28}{figures['batch1_ms_per_face']:>11.2f} ms{figures['batch16_ms_per_face']:>11.2f} ms")
    print(f"\nExact search, one query, k=5, {args.dim}-d unit vectors:")
    for size, ms in search.items():
        build = f"   (hub offsets at index build: {builds[size]:,.0f} ms)" if size in builds else ""
        print(f"  {size:>9,} faces: {ms:8.2f} ms{build}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "stages": stages, "models": models,
                                         "search_ms": {str(k): v for k, v in search.items()},
                                         "cohort_offsets_ms": {str(k): v for k, v in builds.items()}, "dim": args.dim}, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
