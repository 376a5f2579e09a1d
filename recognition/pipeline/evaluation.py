"""LFW evaluation: verification (k-fold over pairs.txt) and 1:N identification.

Pure Python (no Django). ``evaluate_lfw`` reads a directory laid out like ``../shared/data/lfw``
(``images/``, ``pairs.txt``, ``identification.csv``), embeds every image it needs once (cached on
disk by image content hash + embedder key), and returns a JSON-ready dict of figures.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recognition.pipeline.detection import Face, face_nearest_center
from recognition.pipeline.embedding import FusedEmbedder, l2_normalise
from recognition.pipeline.image import content_hash, load_image
from recognition.pipeline.matching import CohortNorm, GalleryIndex
from recognition.pipeline.pipeline import FacePipeline

TARGET_UNKNOWN_ACCEPT = 0.01


@dataclass(frozen=True)
class Pair:
    fold: int
    first: str  # path relative to images/
    second: str
    same: bool


def lfw_image_path(name: str, index: int) -> str:
    return f"{name}/{name}_{int(index):04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Parse LFW's pairs.txt: a header ``folds<TAB>n``, then per fold n matched and n mismatched lines."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    folds, per_fold = int(lines[0][0]), int(lines[0][1])
    body = lines[1:]
    if len(body) != folds * 2 * per_fold:
        raise ValueError(f"{path}: expected {folds * 2 * per_fold} pairs, found {len(body)}")
    pairs = []
    for i, fields in enumerate(body):
        fold = i // (2 * per_fold)
        if len(fields) == 3:
            pairs.append(Pair(fold, lfw_image_path(fields[0], fields[1]), lfw_image_path(fields[0], fields[2]), True))
        elif len(fields) == 4:
            pairs.append(Pair(fold, lfw_image_path(fields[0], fields[1]), lfw_image_path(fields[2], fields[3]), False))
        else:
            raise ValueError(f"{path}: line {i + 2} is neither a matched nor a mismatched pair")
    return pairs


def read_identification(path: Path) -> list[tuple[str, str, str]]:
    """Rows of identification.csv as (path, identity, role), role in gallery/probe/distractor."""
    with open(path, newline="") as handle:
        return [(row["path"], row["identity"], row["role"]) for row in csv.DictReader(handle)]


class EmbeddingCache:
    """On-disk cache: (embedder key, image content hash) -> vector and whether a face was detected."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embedding (embedder TEXT, hash TEXT, detected INTEGER,"
            " vector BLOB, PRIMARY KEY (embedder, hash))"
        )

    def get(self, embedder: str, digest: str) -> tuple[np.ndarray, bool] | None:
        row = self._db.execute(
            "SELECT vector, detected FROM embedding WHERE embedder = ? AND hash = ?", (embedder, digest)
        ).fetchone()
        if row is None:
            return None
        return np.frombuffer(row[0], dtype=np.float32).copy(), bool(row[1])

    def put(self, embedder: str, digest: str, vector: np.ndarray, detected: bool) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO embedding VALUES (?, ?, ?, ?)",
            (embedder, digest, int(detected), np.asarray(vector, dtype=np.float32).tobytes()),
        )

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()


@dataclass(frozen=True)
class EmbeddedSet:
    vectors: dict[str, np.ndarray]
    failures: list[str]
    computed: int  # images decoded, detected and embedded now (the rest came from the cache)
    compute_seconds: float


# Where the face sits in a 250x250 deep-funneled LFW image, relative to its size; used only for
# images in which the detector finds no face (counted and reported as detection failures).
LFW_FALLBACK_BOX = (0.32, 0.30, 0.68, 0.74)
LFW_FALLBACK_LANDMARKS = np.array([[0.41, 0.46], [0.59, 0.46], [0.50, 0.56], [0.42, 0.65], [0.58, 0.65]], np.float32)


def embed_images(
    root: Path,
    paths: Iterable[str],
    pipeline: FacePipeline,
    cache: EmbeddingCache,
    *,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
) -> EmbeddedSet:
    """Embed each image (the face nearest the centre): vectors by path, the paths where detection
    failed (embedded from a fixed central box instead), and the time spent on uncached images.

    A fused embedder is cached part by part, so fusing models already evaluated costs nothing.
    """
    embedder = pipeline.embedder
    units = list(embedder.parts) if isinstance(embedder, FusedEmbedder) else [(embedder, 1.0)]
    vectors: dict[str, np.ndarray] = {}
    failures: list[str] = []
    computed, compute_seconds = 0, 0.0
    for count, relative in enumerate(progress(sorted(set(paths)))):
        data = (root / relative).read_bytes()
        digest = content_hash(data)
        found = [cache.get(unit.key, digest) for unit, _ in units]
        if any(item is None for item in found):
            started = time.perf_counter()
            image = load_image(data)
            face = face_nearest_center(pipeline.detector.detect(image), image.shape)
            detected = face is not None
            if face is None:
                h, w = image.shape[:2]
                x1, y1, x2, y2 = LFW_FALLBACK_BOX
                face = Face(box=(x1 * w, y1 * h, x2 * w, y2 * h), score=0.0, landmarks=LFW_FALLBACK_LANDMARKS * [w, h])
            for position, (unit, _) in enumerate(units):
                if found[position] is None:
                    vector = unit.embed_face(image, face)
                    cache.put(unit.key, digest, vector, detected)
                    found[position] = (vector, detected)
            compute_seconds += time.perf_counter() - started
            computed += 1
            if count % 200 == 0:
                cache.commit()
        parts = [vector * np.float32(np.sqrt(weight)) for (vector, _), (_, weight) in zip(found, units)]
        vectors[relative] = l2_normalise(np.concatenate(parts))
        if not found[0][1]:
            failures.append(relative)
    cache.commit()
    return EmbeddedSet(vectors, failures, computed, compute_seconds)


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true accept rates at every distinct threshold (accept when score >= threshold)."""
    order = np.argsort(-scores, kind="stable")
    scores, same = scores[order], same[order].astype(bool)
    distinct = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tp = np.cumsum(same)[distinct]
    fp = np.cumsum(~same)[distinct]
    tpr = np.r_[0.0, tp / max(same.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~same).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, scores[distinct]]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(scores, same)
    return float(np.trapezoid(tpr, fpr))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """Highest true accept rate whose false accept rate does not exceed ``far``."""
    fpr, tpr, _ = roc_curve(scores, same)
    allowed = fpr <= far
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold maximising accuracy (midpoint between neighbouring scores)."""
    candidates = np.unique(scores)
    midpoints = np.r_[candidates[0] - 1e-6, (candidates[:-1] + candidates[1:]) / 2, candidates[-1] + 1e-6]
    accuracies = [np.mean((scores >= t) == same) for t in midpoints]
    return float(midpoints[int(np.argmax(accuracies))])


def kfold_verification(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, object]:
    """LFW protocol: for each fold, the threshold is chosen on the other folds and applied to it."""
    accuracies, thresholds = [], []
    predicted = np.zeros_like(same, dtype=bool)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(scores[train], same[train])
        predicted[test] = scores[test] >= threshold
        accuracies.append(float(np.mean(predicted[test] == same[test])))
        thresholds.append(threshold)
    tp = int(np.sum(predicted & same))
    fp = int(np.sum(predicted & ~same))
    fn = int(np.sum(~predicted & same))
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return {
        "fold_accuracies": accuracies,
        "fold_thresholds": thresholds,
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "threshold": float(np.mean(thresholds)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
    }


def identification(
    gallery: np.ndarray,
    gallery_ids: list[str],
    probes: np.ndarray,
    probe_ids: list[str],
    distractors: np.ndarray,
    threshold: float,
    cohort: CohortNorm | None = None,
) -> dict[str, float]:
    """Open-set 1:N figures at ``threshold``, scored as RollCall's ``GalleryIndex`` scores
    (with ``cohort`` normalisation when given).

    rank1: probes whose best gallery match is their own identity (closed set);
    rank1_accepted: ... and whose score also reaches the threshold (detect-and-identify rate);
    unknown_accept_rate: distractors (people not in the gallery) whose best score reaches it.
    """
    ids = np.asarray(gallery_ids)
    index = GalleryIndex(gallery, np.arange(len(gallery)), cohort=cohort, half=False)
    probe_scores = index.scores(probes)
    best = probe_scores.argmax(axis=1)
    correct = ids[best] == np.asarray(probe_ids)
    accepted = probe_scores.max(axis=1) >= threshold
    distractor_best = index.scores(distractors).max(axis=1) if len(distractors) else np.zeros(0)
    suggested = float(np.quantile(distractor_best, 1 - TARGET_UNKNOWN_ACCEPT)) if len(distractor_best) else threshold
    return {
        "rank1": float(np.mean(correct)),
        "rank1_accepted": float(np.mean(correct & accepted)),
        "unknown_accept_rate": float(np.mean(distractor_best >= threshold)) if len(distractor_best) else 0.0,
        "suggested_threshold": suggested,
    }


def evaluate_lfw(
    root: Path,
    pipeline: FacePipeline,
    cache: EmbeddingCache,
    *,
    threshold: float | None = None,
    cohort: CohortNorm | None = None,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
) -> dict[str, object]:
    """Run both protocols on ``root`` with ``pipeline``; ``threshold`` defaults to the embedder's;
    ``cohort`` normalises 1:N scores as the deployed gallery index does."""
    started = time.perf_counter()
    root = Path(root)
    images = root / "images"
    pairs = read_pairs(root / "pairs.txt") if (root / "pairs.txt").exists() else []
    rows = read_identification(root / "identification.csv") if (root / "identification.csv").exists() else []
    if not pairs and not rows:
        raise FileNotFoundError(f"{root} has neither pairs.txt nor identification.csv")
    needed = {p.first for p in pairs} | {p.second for p in pairs} | {row[0] for row in rows}
    embedded = embed_images(images, needed, pipeline, cache, progress=progress)
    vectors, failures = embedded.vectors, embedded.failures
    embedding_seconds = time.perf_counter() - started
    operating = pipeline.embedder.threshold if threshold is None else threshold
    result: dict[str, object] = {
        "embedder": pipeline.embedder.name,
        "embedder_version": pipeline.embedder.version,
        "images": len(needed),
        "detection_failures": len(failures),
        "detection_failure_paths": failures,
        "pairs": len(pairs),
        "operating_threshold": operating,
        "images_embedded_now": embedded.computed,
        # decode + detect + align + embed per image, over the images not found in the cache
        "ms_per_image": 1000 * embedded.compute_seconds / embedded.computed if embedded.computed else None,
    }
    if pairs:
        scores = np.array([float(vectors[p.first] @ vectors[p.second]) for p in pairs])
        same = np.array([p.same for p in pairs])
        folds = np.array([p.fold for p in pairs])
        result.update(kfold_verification(scores, same, folds))
        fpr, tpr, _ = roc_curve(scores, same)
        result["roc_auc"] = float(np.trapezoid(tpr, fpr))
        result["tar_at_far_1e-3"] = tar_at_far(scores, same, 1e-3)
        result["tar_at_far_1e-2"] = tar_at_far(scores, same, 1e-2)
        result["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    if rows:
        gallery = [(p, i) for p, i, role in rows if role == "gallery"]
        probes = [(p, i) for p, i, role in rows if role == "probe"]
        distractors = [p for p, _, role in rows if role == "distractor"]
        figures = identification(
            np.array([vectors[p] for p, _ in gallery]),
            [i for _, i in gallery],
            np.array([vectors[p] for p, _ in probes]),
            [i for _, i in probes],
            np.array([vectors[p] for p in distractors]) if distractors else np.zeros((0, 1)),
            operating,
            cohort,
        )
        result.update(figures)
        result.update({"gallery": len(gallery), "probes": len(probes), "distractors": len(distractors)})
    result["seconds"] = time.perf_counter() - started
    result["embedding_seconds"] = embedding_seconds
    return result


def plot_roc(results: list[dict[str, object]], path: Path) -> None:
    """One ROC plot (log false accept rate) with a curve per evaluated embedder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=120)
    for result in results:
        roc = result.get("roc")
        if not roc:
            continue
        fpr = np.maximum(np.asarray(roc["fpr"]), 1e-4)
        name = result.get("spec") or result["embedder"]
        label = f"{name}: acc {100 * result['accuracy_mean']:.2f}%, AUC {result['roc_auc']:.4f}"
        ax.plot(fpr, roc["tpr"], label=label)
    ax.set_xscale("log")
    ax.set_xlim(1e-4 * 0.9, 1.0)
    ax.set_ylim(0.8, 1.001)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
