"""evaluate_lfw on a small LFW-style directory built from the shipped photos (real faces)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recognition.pipeline.evaluation import EmbeddingCache, kfold_verification, read_pairs, roc_auc, tar_at_far


def _lfw_dir(root: Path, people: dict[str, list[Path]]) -> Path:
    """images/Name/Name_000N.jpg, a 2-fold pairs.txt and an identification.csv, like LFW's."""
    names = {}
    for person, photos in people.items():
        name = person.title()
        names[name] = len(photos)
        (root / "images" / name).mkdir(parents=True)
        for i, photo in enumerate(photos, start=1):
            shutil.copy(photo, root / "images" / name / f"{name}_{i:04d}.jpg")
    multi = [n for n, count in names.items() if count >= 2]
    matched = [f"{n}\t1\t2" for n in multi]
    ordered = sorted(names)
    mismatched = [f"{a}\t1\t{b}\t1" for a, b in zip(ordered, ordered[1:] + ordered[:1])]
    folds = 2
    per_fold = min(len(matched), len(mismatched)) // folds
    lines = [f"{folds}\t{per_fold}"]
    for f in range(folds):
        lines += matched[f * per_fold:(f + 1) * per_fold] + mismatched[f * per_fold:(f + 1) * per_fold]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    rows = ["path,identity,role"]
    for name, count in names.items():
        if name == ordered[-1]:
            rows += [f"{name}/{name}_{i:04d}.jpg,{name},distractor" for i in range(1, count + 1)]
            continue
        rows.append(f"{name}/{name}_0001.jpg,{name},gallery")
        rows += [f"{name}/{name}_{i:04d}.jpg,{name},probe" for i in range(2, count + 1)]
    (root / "identification.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.django_db
def test_evaluate_lfw_writes_figures_plot_and_reuses_its_cache(tmp_path: Path, people: dict[str, list[Path]]) -> None:
    root = _lfw_dir(tmp_path / "lfw", people)
    out, plot, cache = tmp_path / "r.json", tmp_path / "roc.png", tmp_path / "cache.sqlite3"
    args = ["evaluate_lfw", "--root", str(root), "--json", str(out), "--plot", str(plot), "--cache", str(cache),
            "--embedder", "dlib"]
    started = time.perf_counter()
    call_command(*args)
    first = time.perf_counter() - started
    figures = json.loads(out.read_text())
    for key in ["embedder", "pairs", "accuracy_mean", "accuracy_std", "roc_auc", "tar_at_far_1e-3", "precision",
                "recall", "f1", "threshold", "detection_failures", "rank1", "unknown_accept_rate", "seconds"]:
        assert key in figures, key
    assert figures["embedder"] == "dlib" and figures["pairs"] == 8
    assert figures["accuracy_mean"] == 1.0 and figures["roc_auc"] == 1.0
    assert figures["rank1"] == 1.0 and figures["unknown_accept_rate"] == 0.0
    assert figures["detection_failures"] == 0
    assert figures["images_embedded_now"] == 12 and figures["ms_per_image"] > 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    # second run: every embedding comes from the cache
    cached_rows = EmbeddingCache(cache)._db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0]
    assert cached_rows == sum(len(p) for p in people.values())
    started = time.perf_counter()
    call_command(*args)
    again = json.loads(out.read_text())
    assert again["images_embedded_now"] == 0 and again["ms_per_image"] is None
    assert again["accuracy_mean"] == figures["accuracy_mean"]
    assert again["embedding_seconds"] < figures["embedding_seconds"] / 3
    assert time.perf_counter() - started < first


def test_evaluate_lfw_refuses_a_directory_without_images(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no images/"):
        call_command("evaluate_lfw", "--root", str(tmp_path))


def test_pairs_parser_reads_the_official_layout(tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text("1\t1\nAbel\t1\t4\nAna\t1\tBob\t2\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    assert pairs[0].same and pairs[0].second == "Abel/Abel_0004.jpg"
    assert not pairs[1].same and pairs[1].second == "Bob/Bob_0002.jpg"


def test_metrics_on_known_scores() -> None:
    import numpy as np

    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.75])
    same = np.array([True, True, True, False, False, False])
    assert roc_auc(scores, same) == pytest.approx(8 / 9)
    assert tar_at_far(scores, same, 0.0) == pytest.approx(2 / 3)
    result = kfold_verification(scores, same, np.array([0, 0, 1, 1, 0, 1]))
    assert 0 <= result["accuracy_mean"] <= 1 and len(result["fold_accuracies"]) == 2


def test_evaluate_lfw_on_shared_lfw_is_an_evaluation_command_not_a_test(shared_data: Path) -> None:
    """The full LFW run lives in `manage.py evaluate_lfw` (minutes); here only its inputs are checked."""
    pairs = read_pairs(shared_data / "lfw" / "pairs.txt")
    assert len(pairs) == 2400 and sum(p.same for p in pairs) == 1200
