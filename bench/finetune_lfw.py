"""Does the projection head help? Offline, on the LFW 1:N split (identification.csv).

    .venv/bin/python bench/finetune_lfw.py [--lfw ../shared/data/lfw] [--embedder fused]
        [--people N] [--max-probes K] [--distractors M] [--max-minutes 30] [--device cpu] [--json FILE]

Each gallery identity's probes (at most K, in file order) are split in halves: the first half are
the "harvested" views the head trains on (positives; the gallery photo is the anchor), the second
half are held out. Distractors (strangers) are split the same way; the held-out half sets the
threshold at which 1% of strangers are accepted, re-calibrated for each model. Reported before and
after training: held-out probes recognised (right person, score at or above that threshold),
misidentified (someone else above it), and the strangers accepted. Scores are those of RollCall's
gallery index (cohort normalisation as configured by default). Embeddings are cached on disk
(``--cache``, the evaluate_lfw cache), so a rerun costs only the training.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE_HOME = Path(os.environ.get("ROLLCALL_CACHE", Path.home() / ".cache" / "rollcall"))
DEFAULT_CACHE = CACHE_HOME / "eval" / "embeddings.sqlite3"  # the one evaluate_lfw uses
STRANGERS_ACCEPTED = 0.01


def open_set(gallery: np.ndarray, gallery_ids: list[str], probes: np.ndarray, probe_ids: list[str],
             strangers: np.ndarray, cohort) -> dict[str, float]:  # noqa: ANN001
    """Held-out figures at the threshold that accepts STRANGERS_ACCEPTED of ``strangers``."""
    from recognition.pipeline.matching import GalleryIndex

    index = GalleryIndex(gallery, np.arange(len(gallery)), cohort=cohort, half=False)
    ids = np.asarray(gallery_ids)
    probe_scores = index.scores(probes)
    best = probe_scores.max(axis=1)
    right = ids[probe_scores.argmax(axis=1)] == np.asarray(probe_ids)
    stranger_best = index.scores(strangers).max(axis=1)
    threshold = float(np.quantile(stranger_best, 1 - STRANGERS_ACCEPTED, method="higher")) + 1e-6
    accepted = best >= threshold
    return {"threshold": threshold, "recognised": float(np.mean(right & accepted)),
            "misidentified": float(np.mean(~right & accepted)), "rank1": float(np.mean(right)),
            "strangers_accepted": float(np.mean(stranger_best >= threshold))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--embedder", default="fused", help="embedder spec (default: the default embedder)")
    parser.add_argument("--people", type=int, help="only the first N gallery identities (development runs)")
    parser.add_argument("--max-probes", type=int, default=10, help="probes per identity, in file order (default 10)")
    parser.add_argument("--distractors", type=int, help="only the first M distractors")
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--regularisation", type=float, help="override the head's default")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.lfw / "identification.csv").is_file():
        sys.exit(f"{args.lfw}/identification.csv not found: this benchmark needs ../shared/data/lfw")

    from tqdm import tqdm

    from recognition.pipeline.detection import MtcnnDetector
    from recognition.pipeline.embedding import create_from_spec
    from recognition.pipeline.evaluation import EmbeddingCache, embed_images, read_identification
    from recognition.pipeline.finetune import REGULARISATION, train_head
    from recognition.pipeline.matching import CohortNorm
    from recognition.pipeline.pipeline import FacePipeline

    rows = read_identification(args.lfw / "identification.csv")
    gallery = [(p, i) for p, i, role in rows if role == "gallery"][: args.people]
    people = {i for _, i in gallery}
    probes_of: dict[str, list[str]] = collections.defaultdict(list)
    for path, identity, role in rows:
        if role == "probe" and identity in people and len(probes_of[identity]) < args.max_probes:
            probes_of[identity].append(path)
    train, held = [], []
    for identity, paths in probes_of.items():
        cut = len(paths) // 2  # one probe only: held out (nothing to learn from)
        train += [(p, identity) for p in paths[:cut]]
        held += [(p, identity) for p in paths[cut:]]
    distractors = [p for p, _, role in rows if role == "distractor"][: args.distractors]
    held_strangers = distractors[len(distractors) // 2:]

    pipeline = FacePipeline(detector=MtcnnDetector(min_face_size=40, device=args.device),
                            embedder=create_from_spec(args.embedder))
    cache = EmbeddingCache(args.cache)
    needed = [p for p, _ in gallery] + [p for p, _ in train + held] + held_strangers
    embedded = embed_images(args.lfw / "images", needed, pipeline, cache,
                            progress=lambda items: tqdm(items, desc="embedding", unit="img"))
    cache.close()
    vectors = embedded.vectors

    def matrix(paths: list[str]) -> np.ndarray:
        return np.array([vectors[p] for p in paths], dtype=np.float32)

    number = {identity: n for n, identity in enumerate(sorted(people))}
    g_vectors, g_ids = matrix([p for p, _ in gallery]), [i for _, i in gallery]
    h_vectors, h_ids = matrix([p for p, _ in held]), [i for _, i in held]
    s_vectors = matrix(held_strangers)
    cohort = CohortNorm(neighbours=10, weight=0.5)
    before = open_set(g_vectors, g_ids, h_vectors, h_ids, s_vectors, cohort)
    options = {} if args.regularisation is None else {"regularisation": args.regularisation}
    result = train_head(anchors=g_vectors, anchor_labels=np.array([number[i] for i in g_ids]),
                        positives=matrix([p for p, _ in train]),
                        positive_labels=np.array([number[i] for _, i in train]),
                        max_minutes=args.max_minutes, device=args.device, **options)
    head = result.head
    after = open_set(head.apply(g_vectors), g_ids, head.apply(h_vectors), h_ids, head.apply(s_vectors), cohort)
    figures = {
        "embedder": pipeline.embedder.key, "gallery_people": len(gallery), "training_views": len(train),
        "held_out_probes": len(held), "held_out_strangers": len(held_strangers),
        "detection_failures": len(embedded.failures), "before": before, "after": after,
        "training": {"steps": result.steps, "seconds": round(result.seconds, 2), "device": result.device,
                     "stopped": result.stopped, "initial_loss": result.initial_loss, "final_loss": result.final_loss,
                     "regularisation": args.regularisation if args.regularisation is not None else REGULARISATION,
                     "weight_change": float(np.linalg.norm(head.weight - np.eye(head.dim)))},
    }
    print(f"\nProjection head on LFW 1:N ({pipeline.embedder.name}; {len(gallery)} people, "
          f"{len(train)} training views, {len(held)} held-out probes, {len(held_strangers)} held-out strangers):")
    for name, row in (("before", before), ("after", after)):
        print(f"  {name:6} recognised {100 * row['recognised']:6.2f}%  "
              f"misidentified {100 * row['misidentified']:5.2f}%  "
              f"strangers accepted {100 * row['strangers_accepted']:5.2f}%  rank-1 {100 * row['rank1']:6.2f}%  "
              f"threshold {row['threshold']:.3f}")
    t = figures["training"]
    print(f"  training: {t['steps']} steps in {t['seconds']} s on {t['device']} ({t['stopped']}); triplet loss "
          f"{t['initial_loss']:.4f} -> {t['final_loss']:.4f}; |W - I| = {t['weight_change']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"  total {time.perf_counter() - started:.0f} s")
