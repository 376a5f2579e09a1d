"""Evaluate embedders on an LFW-style directory: k-fold verification and 1:N identification."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recognition.engine import cohort_norm
from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.embedding import EMBEDDERS, create_from_spec
from recognition.pipeline.errors import ModelUnavailableError
from recognition.pipeline.evaluation import EmbeddingCache, evaluate_lfw, plot_roc
from recognition.pipeline.pipeline import FacePipeline

DEFAULT_CACHE = Path(os.environ.get("ROLLCALL_CACHE", Path.home() / ".cache" / "rollcall")) / "eval" / "embeddings.sqlite3"


class Command(BaseCommand):
    help = (
        "Evaluate face embedders on DIR laid out like LFW (images/, pairs.txt, identification.csv): "
        "k-fold verification accuracy, ROC AUC, TAR@FAR, 1:N rank-1 and unknown accept rate "
        "(1:N scored like the deployed gallery index, with ROLLCALL_COHORT_* normalisation)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--root", required=True, type=Path, help="LFW-style directory")
        parser.add_argument(
            "--embedder", action="append", default=None,
            help="embedder spec, repeatable: NAME[:mirror,align=similarity,...] (default: the configured embedder); "
                 "'all' = every registered one",
        )
        parser.add_argument("--json", dest="json_path", type=Path, help="write the figures to this JSON file")
        parser.add_argument("--plot", type=Path, help="write the ROC curve(s) to this PNG file")
        parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"embedding cache (default {DEFAULT_CACHE})")
        parser.add_argument("--threshold", type=float, help="operating threshold for 1:N (default: each embedder's own)")
        parser.add_argument("--min-face-size", type=int, default=40, help="MTCNN minimum face size in pixels")

    def handle(self, *args, root: Path, embedder: list[str] | None, json_path: Path | None, plot: Path | None,
               cache: Path, threshold: float | None, min_face_size: int, **options) -> None:
        if not (root / "images").is_dir():
            raise CommandError(f"{root} has no images/ folder (expected the layout of ../shared/data/lfw)")
        specs = embedder or [settings.ROLLCALL_EMBEDDER]
        if specs == ["all"]:
            specs = list(EMBEDDERS)
        detector = MtcnnDetector(min_face_size=min_face_size, device=settings.ROLLCALL_DEVICE)
        store = EmbeddingCache(cache)
        results: list[dict[str, object]] = []
        skipped: dict[str, str] = {}
        for spec in specs:
            try:
                model = create_from_spec(spec)
            except ModelUnavailableError as exc:
                skipped[spec] = exc.detail
                self.stderr.write(f"skipping {spec}: {exc.detail}")
                continue
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            pipeline = FacePipeline(detector=detector, embedder=model)
            started = time.perf_counter()
            result = evaluate_lfw(
                root, pipeline, store, threshold=threshold, cohort=cohort_norm(),
                progress=lambda items, spec=spec: tqdm(items, desc=f"embedding ({spec})", unit="img", mininterval=2),
            )
            result["spec"] = spec
            result["wall_seconds"] = time.perf_counter() - started
            results.append(result)
        store.close()
        if not results:
            raise CommandError("no embedder could be loaded: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        self._print_table(results)
        if plot:
            plot_roc(results, plot)
            self.stdout.write(f"ROC plot written to {plot}")
        if json_path:
            summary = {k: v for k, v in results[0].items() if k != "roc"}
            summary["results"] = [{k: v for k, v in r.items() if k != "roc"} for r in results]
            summary["skipped"] = skipped
            json_path.write_text(json.dumps(summary, indent=2))
            self.stdout.write(f"figures written to {json_path}")

    def _print_table(self, results: list[dict[str, object]]) -> None:
        header = f"{'embedder':34} {'acc %':>14} {'AUC':>7} {'TAR@1e-3':>9} {'thr':>6} {'rank1':>7} {'rank1@thr':>9} {'UAR':>6} {'det.fail':>8} {'ms/img':>7}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in results:
            acc = f"{100 * r.get('accuracy_mean', 0):.2f}±{100 * r.get('accuracy_std', 0):.2f}" if "accuracy_mean" in r else "-"
            self.stdout.write(
                f"{str(r['embedder']) + ' ' + str(r['embedder_version']):34.34} {acc:>14} {r.get('roc_auc', 0):7.4f} "
                f"{r.get('tar_at_far_1e-3', 0):9.4f} {r.get('threshold', 0):6.3f} {r.get('rank1', 0):7.4f} "
                f"{r.get('rank1_accepted', 0):9.4f} {r.get('unknown_accept_rate', 0):6.4f} {r['detection_failures']:>8} "
                f"{(format(r['ms_per_image'], '7.1f') if r.get('ms_per_image') else '  cached')}"
            )
        for r in results:
            if "suggested_threshold" in r:
                self.stdout.write(
                    f"{r['spec']}: operating threshold {r['operating_threshold']:.3f}; threshold for 1% unknown accept "
                    f"on this gallery: {r['suggested_threshold']:.3f}; {r['seconds']:.0f} s"
                )
