"""Fit the fused embedder's weights and threshold on LFW folds (no re-embedding when cached).

    .venv/bin/python bench/fit_fusion.py --root ../shared/data/lfw [--parts dlib facenet-casia-onnx] [--json FILE]

Each part's cosine is z-normalised by its impostor (mismatched-pair) mean and std; the fused
score is sum_i w_i * z_i with sum w_i = 1. RollCall identifies (1:N) more than it verifies, so
a weighting is scored by verification accuracy (inner k-fold) plus 1:N rank-1 of the probes
whose identities are in the same folds (LFW folds are identity-disjoint; ``manifest.csv`` gives
each image's fold): accuracy alone is flat within a pair or two over a wide range of weights,
while rank-1 is not. The weighting is chosen on k-1 folds and measured on the held-out fold
(nested: held-out pairs and held-out identities' probes), then refitted on all folds. Because z_i is
linear in cos_i, the result is one vector per face: RollCall scales part i by sqrt(a_i) with
a_i proportional to w_i / std_i (``FUSION_WEIGHTS`` in recognition/pipeline/embedding.py).
The operating threshold is the fused score at which 1% of the 1:N distractors are accepted, with
the gallery index's default hub normalisation (``CohortNorm()``, as RollCall deploys it).
Vectors come from evaluate_lfw's cache (run ``manage.py evaluate_lfw --embedder PART`` first
to fill it, or this script embeds what is missing).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from recognition.pipeline.detection import MtcnnDetector  # noqa: E402
from recognition.pipeline.embedding import create_from_spec  # noqa: E402
from recognition.pipeline.evaluation import (  # noqa: E402
    EmbeddingCache,
    best_threshold,
    embed_images,
    identification,
    read_identification,
    read_pairs,
)
from recognition.pipeline.matching import CohortNorm  # noqa: E402
from recognition.pipeline.pipeline import FacePipeline  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("ROLLCALL_CACHE", Path.home() / ".cache" / "rollcall")) / "eval" / "embeddings.sqlite3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--parts", nargs="+", default=["dlib", "facenet-casia-onnx"])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.root / "pairs.txt").is_file():
        sys.exit(f"{args.root} has no pairs.txt: point --root at ../shared/data/lfw")
    pairs = read_pairs(args.root / "pairs.txt")
    rows = read_identification(args.root / "identification.csv")
    needed = {p.first for p in pairs} | {p.second for p in pairs} | {r[0] for r in rows}
    cache = EmbeddingCache(args.cache)
    detector = MtcnnDetector()
    vectors = []
    for spec in args.parts:
        pipeline = FacePipeline(detector=detector, embedder=create_from_spec(spec))
        found = embed_images(args.root / "images", needed, pipeline, cache,
                                progress=lambda items, s=spec: tqdm(items, desc=s, unit="img", mininterval=5))
        vectors.append(found.vectors)
    cache.close()
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    cosines = np.array([[float(v[p.first] @ v[p.second]) for p in pairs] for v in vectors])  # (parts, pairs)
    gallery = [(p, i) for p, i, role in rows if role == "gallery"]
    probes = [(p, i) for p, i, role in rows if role == "probe"]
    distractors = [p for p, _, role in rows if role == "distractor"]
    gallery_ids = np.array([i for _, i in gallery])
    probe_ids = np.array([i for _, i in probes])
    # (parts, probes, gallery) cosines, and each probe's fold (pairs.txt numbers folds from 0)
    probe_cosines = np.stack([np.array([v[p] for p, _ in probes]) @ np.array([v[p] for p, _ in gallery]).T
                              for v in vectors])
    probe_folds = identity_folds(args.root, probe_ids, offset=int(folds.min()))

    grid = [np.array(w) for w in itertools.product(np.arange(0, 1.0001, 0.05), repeat=len(args.parts)) if abs(sum(w) - 1) < 1e-6]

    def fused_scores(weights: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        impostor = cosines[:, train & ~same]
        mean, std = impostor.mean(axis=1), impostor.std(axis=1)
        return ((cosines - mean[:, None]) / std[:, None] * weights[:, None]).sum(axis=0), weights / std

    def accuracy(scores: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
        threshold = best_threshold(scores[train], same[train])
        return float(np.mean((scores[test] >= threshold) == same[test]))

    def rank1(weights: np.ndarray, train: np.ndarray, which: np.ndarray) -> float:
        """Rank-1 of the probes ``which`` against the whole gallery with the fused score."""
        _, scale = fused_scores(weights, train)
        fused = np.tensordot(scale, probe_cosines[:, which], axes=1)
        return float(np.mean(gallery_ids[fused.argmax(axis=1)] == probe_ids[which]))

    def objective(weights: np.ndarray, train: np.ndarray) -> float:
        inner = np.mean([accuracy(fused_scores(weights, train)[0], train & (folds != f), train & (folds == f))
                         for f in np.unique(folds[train])])
        return float(inner + rank1(weights, train, np.isin(probe_folds, np.unique(folds[train]))))

    fold_accuracies, fold_rank1, fold_weights = [], [], []
    for fold in tqdm(np.unique(folds), desc="k-fold weight search", unit="fold"):
        train, test = folds != fold, folds == fold
        best = np.array(max((objective(w, train), tuple(w)) for w in grid)[1])
        fold_weights.append(best.round(2).tolist())
        fold_accuracies.append(accuracy(fused_scores(best, train)[0], train, test))
        fold_rank1.append(rank1(best, train, probe_folds == fold))

    everything = np.ones_like(same)
    final = np.array(max((objective(w, everything), tuple(w)) for w in grid)[1])
    _, vector_weights = fused_scores(final, everything)
    vector_weights = vector_weights / vector_weights.sum()
    # 1:N with the fused vectors, at the threshold that accepts 1% of distractors
    fused_vectors = {path: np.concatenate([np.sqrt(a) * v[path] for a, v in zip(vector_weights, vectors)]) for path in needed}
    ident = identification(
        np.array([fused_vectors[p] for p, _ in gallery]), [i for _, i in gallery],
        np.array([fused_vectors[p] for p, _ in probes]), [i for _, i in probes],
        np.array([fused_vectors[p] for p in distractors]), 0.0, CohortNorm(),
    )
    ident = identification(
        np.array([fused_vectors[p] for p, _ in gallery]), [i for _, i in gallery],
        np.array([fused_vectors[p] for p, _ in probes]), [i for _, i in probes],
        np.array([fused_vectors[p] for p in distractors]), ident["suggested_threshold"], CohortNorm(),
    )
    single = {}
    for spec, row in zip(args.parts, cosines):
        single[spec] = float(np.mean([accuracy(row, folds != f, folds == f) for f in np.unique(folds)]))
    result = {
        "parts": args.parts,
        "single_model_kfold_accuracy": single,
        "fused_kfold_accuracy_mean": float(np.mean(fold_accuracies)),
        "fused_kfold_accuracy_std": float(np.std(fold_accuracies)),
        "fused_nested_rank1": float(np.mean(fold_rank1)),
        "fold_weights": fold_weights,
        "z_weights": final.tolist(),
        "vector_weights": dict(zip(args.parts, vector_weights.round(4).tolist())),
        "threshold_1pct_unknown_accept": ident["suggested_threshold"],
        "rank1": ident["rank1"],
        "rank1_accepted": ident["rank1_accepted"],
        "unknown_accept_rate": ident["unknown_accept_rate"],
    }
    for spec, acc in single.items():
        print(f"{spec:28} k-fold accuracy {100 * acc:.2f}%")
    print(f"{'fused':28} k-fold accuracy {100 * result['fused_kfold_accuracy_mean']:.2f}% "
          f"± {100 * result['fused_kfold_accuracy_std']:.2f}, rank-1 of held-out identities "
          f"{100 * result['fused_nested_rank1']:.2f}% (weights chosen inside each training split: {fold_weights})")
    print(f"refitted on all folds: z-weights {final.tolist()} -> FUSION_WEIGHTS = {result['vector_weights']}")
    print(f"1:N: rank-1 {100 * ident['rank1']:.2f}%, threshold for 1% unknown accept {ident['suggested_threshold']:.4f}, "
          f"rank-1 accepted there {100 * ident['rank1_accepted']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def identity_folds(root: Path, identities: np.ndarray, *, offset: int) -> np.ndarray:
    """The LFW fold of each identity (numbered like pairs.txt's), from ``manifest.csv``."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        sys.exit(f"{manifest} is missing: it gives each identity's fold (path,identity,lfw_fold)")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = min(int(row["lfw_fold"]) for row in rows)
    fold_of = {row["identity"]: int(row["lfw_fold"]) - first + offset for row in rows}
    return np.array([fold_of[identity] for identity in identities])


if __name__ == "__main__":
    main()
