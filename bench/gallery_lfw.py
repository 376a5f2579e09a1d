"""The LFW 1:N protocol through RollCall itself: enroll_folder, then recognition via the services.

    .venv/bin/python bench/gallery_lfw.py [--lfw ../shared/data/lfw] [--json FILE]

Enrols the 622 gallery images of identification.csv with ``manage.py enroll_folder`` (one
employee per identity, the quality gate on) into a throw-away SQLite database and media folder,
then recognises the 2,838 probes and 1,042 distractors with ``recognition.services.face_recognize``
(the face nearest the image centre), and prints rank-1, the unknown accept rate and the time taken.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--limit", type=int, help="only the first N probes and distractors (smoke runs)")
    args = parser.parse_args()
    if not (args.lfw / "identification.csv").is_file():
        sys.exit(f"{args.lfw}/identification.csv not found: this benchmark needs ../shared/data/lfw")
    work = Path(tempfile.mkdtemp(prefix="rollcall-bench-"))
    os.environ.update({"ROLLCALL_VAR_DIR": str(work), "MEDIA_ROOT": str(work / "media"), "DJANGO_SETTINGS_MODULE": "portal.settings"})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)  # embedded mode: tasks run in-process, on this machine's CPU
    import django

    django.setup()
    from django.core.management import call_command
    from tqdm import tqdm

    from portal.models import Employee
    from recognition.engine import get_pipeline
    from recognition.pipeline.errors import PipelineError
    from recognition.services import face_recognize

    call_command("migrate", verbosity=0)
    with open(args.lfw / "identification.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    gallery = [r for r in rows if r["role"] == "gallery"]
    probes = [r for r in rows if r["role"] == "probe"][: args.limit]
    distractors = [r for r in rows if r["role"] == "distractor"][: args.limit]
    only = work / "gallery.txt"
    only.write_text("\n".join(r["path"] for r in gallery) + "\n")
    get_pipeline()  # load the models before timing
    started = time.perf_counter()
    call_command("enroll_folder", str(args.lfw / "images"), "--only", str(only), "--quiet", "--consent")
    enrol_seconds = time.perf_counter() - started
    enrolled_people = set(Employee.objects.filter(faces__isnull=False).values_list("code", flat=True))
    codes = dict(Employee.objects.values_list("pk", "code"))

    def best_of(path: Path):
        data = path.read_bytes()
        try:
            results = face_recognize(data=data)
        except PipelineError:
            return None
        if not results:
            return None
        return min(results, key=lambda r: (r.face.center[0] - 125) ** 2 + (r.face.center[1] - 125) ** 2)

    started = time.perf_counter()
    correct = accepted_correct = wrong_accept = no_face = 0
    for row in tqdm(probes, desc="probes", unit="img"):
        result = best_of(args.lfw / "images" / row["path"])
        if result is None:
            no_face += 1
            continue
        right = result.best is not None and codes.get(result.best.label) == row["identity"]
        correct += right
        accepted_correct += right and result.known
        wrong_accept += (not right) and result.known
    unknown_accepted = distractor_no_face = 0
    for row in tqdm(distractors, desc="distractors", unit="img"):
        result = best_of(args.lfw / "images" / row["path"])
        if result is None:
            distractor_no_face += 1
            continue
        unknown_accepted += result.known
    recognise_seconds = time.perf_counter() - started
    embedder = get_pipeline().embedder
    figures = {
        "embedder": embedder.key,
        "threshold": embedder.threshold,
        "gallery_images": len(gallery),
        "enrolled_people": len(enrolled_people),
        "rejected_gallery_images": len(gallery) - len(enrolled_people),
        "probes": len(probes),
        "distractors": len(distractors),
        "rank1": correct / len(probes),
        "rank1_accepted": accepted_correct / len(probes),
        "probes_wrongly_accepted_as_someone_else": wrong_accept / len(probes),
        "probes_without_face": no_face,
        "unknown_accept_rate": unknown_accepted / len(distractors),
        "distractors_without_face": distractor_no_face,
        "enrol_seconds": enrol_seconds,
        "enrol_ms_per_image": 1000 * enrol_seconds / len(gallery),
        "recognise_seconds": recognise_seconds,
        "recognise_ms_per_image": 1000 * recognise_seconds / (len(probes) + len(distractors)),
    }
    print(f"\nLFW 1:N through RollCall ({embedder.key}, threshold {embedder.threshold}):")
    print(f"  enrolled {figures['enrolled_people']} of {len(gallery)} gallery photos in {enrol_seconds:.0f} s "
          f"({figures['enrol_ms_per_image']:.0f} ms each); {figures['rejected_gallery_images']} rejected by the quality gate")
    print(f"  rank-1 {100 * figures['rank1']:.2f}% of {len(probes)} probes; recognised (right and above threshold) "
          f"{100 * figures['rank1_accepted']:.2f}%; accepted as someone else {100 * figures['probes_wrongly_accepted_as_someone_else']:.2f}%")
    print(f"  unknown accept rate {100 * figures['unknown_accept_rate']:.2f}% of {len(distractors)} distractors")
    print(f"  recognition: {recognise_seconds:.0f} s, {figures['recognise_ms_per_image']:.0f} ms per image")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
