"""A site simulation of the nightly learning through RollCall's own services, on LFW's 1:N split.

    .venv/bin/python bench/adaptation.py --root ../shared/data/lfw [--nights 5] [--json FILE] [--limit N]

Enrols the gallery images of identification.csv (``manage.py enroll_folder``, one employee per
identity, all consenting) into a throw-away SQLite database and media folder. Each enrolled
person's probes are split in file order: the first half arrive as kiosk check-ins spread over the
nights (the real check-in service, liveness off: the system sees only images and its own
decisions), the second half are held out; distractors (strangers) are split the same way. After
each night the real nightly job runs. Reported per night: held-out probes recognised above the
threshold and misidentified, held-out strangers accepted, templates added and how many were wrong
(the bench knows the truth; the job does not), the gate's decision and the job's time. Rows:
templates only, and templates + fine-tuning when recognition.pipeline.finetune is importable.
Also the ceiling of templates on the split (``ceiling``): every arriving probe added under its
true name, measured the same way.

Detection and embedding results are cached on disk per embedder version (``--cache``), so a rerun
costs only the learning itself; the first run embeds every image once (~0.1-0.3 s each on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cached(pipeline, cache: Path) -> None:  # noqa: ANN001
    """Memoise the detector and the embedder on disk, keyed by the image's bytes (and the face)."""
    key = hashlib.sha256(pipeline.embedder.version.encode()).hexdigest()[:16]
    folder = cache / key
    folder.mkdir(parents=True, exist_ok=True)
    detector, embedder = pipeline.detector, pipeline.embedder

    def memo(name: str, compute):  # noqa: ANN001, ANN202
        path = folder / f"{name}.pkl"
        if path.is_file():
            try:
                return pickle.loads(path.read_bytes())
            except Exception:  # noqa: BLE001 - a torn cache file: compute again
                pass
        value = compute()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(value))
        tmp.replace(path)
        return value

    def digest(image: np.ndarray, *extra: object) -> str:
        h = hashlib.sha256(np.ascontiguousarray(image).tobytes())
        h.update(repr(image.shape).encode())
        for item in extra:
            h.update(repr(item).encode())
        return h.hexdigest()

    detect, embed_faces, embed_pairs = detector.detect, embedder.embed_faces, embedder.embed_pairs
    detector.detect = lambda image: memo("d" + digest(image), lambda: detect(image))
    embedder.embed_faces = lambda image, faces: memo(
        "f" + digest(image, [f.box for f in faces]), lambda: embed_faces(image, faces))
    embedder.embed_pairs = lambda pairs: (np.concatenate([memo("p" + digest(image, face.box), lambda i=image, f=face: embed_pairs([(i, f)]))
                                                          for image, face in pairs]) if pairs else embed_pairs(pairs))


def ceiling(root: Path, codes: dict[int, str], arriving: list[tuple[str, str]], heldout: list[tuple[str, str]],
            strangers: list[str], *, rate: float = 0.01) -> dict:
    """The most templates could give on this split: every arriving probe added to the enrolled
    gallery under its TRUE name (labels no site has; no cap, no safety rule), the held-out probes
    and strangers then searched as the bench's ``measure`` does (hub normalisation included).
    Reported at the site's threshold and at the lowest threshold (0.001 steps) that holds the
    held-out strangers at ``rate``: the bound the nightly templates work under."""
    from recognition.engine import cohort_norm, get_pipeline, match_threshold
    from recognition.pipeline.errors import PipelineError
    from recognition.pipeline.matching import GalleryIndex
    from recognition.selectors import gallery_index
    from recognition.services import decode_upload

    pipeline = get_pipeline()

    def vector(path: str) -> np.ndarray | None:
        try:
            found = pipeline.embed_all(decode_upload((root / "images" / path).read_bytes()))
        except PipelineError:
            return None
        if not found:
            return None
        return min(found, key=lambda e: (e.face.center[0] - 125) ** 2 + (e.face.center[1] - 125) ** 2).vector

    pk_of = {code: pk for pk, code in codes.items()}
    enrolled = gallery_index()
    extra = [(pk_of[person], v) for person, path in arriving if (v := vector(path)) is not None]
    oracle = GalleryIndex(np.vstack([enrolled.vectors, np.array([v for _, v in extra], np.float32)]),
                          np.concatenate([enrolled.labels, np.array([pk for pk, _ in extra], np.int64)]),
                          cohort=cohort_norm())
    probes = [(pk_of[person], v) for person, path in heldout if (v := vector(path)) is not None]
    others = [v for path in strangers if (v := vector(path)) is not None]
    best = [oracle.search(v[None], k=1)[0] for _, v in probes]
    stranger_best = np.sort([m[0].score if m else -1.0 for m in (oracle.search(v[None], k=1)[0] for v in others)])[::-1]

    def at(threshold: float) -> dict:  # rates over every image, as ``measure`` counts them
        right = sum(1 for (pk, _), m in zip(probes, best, strict=True) if m and m[0].score >= threshold and m[0].label == pk)
        wrong = sum(1 for (pk, _), m in zip(probes, best, strict=True) if m and m[0].score >= threshold and m[0].label != pk)
        return {"threshold": round(threshold, 4), "recognised": right / max(1, len(heldout)),
                "misidentified": wrong / max(1, len(heldout)),
                "strangers_accepted": int((stranger_best >= threshold).sum()) / max(1, len(strangers))}

    # The lowest threshold (0.001 steps) letting in at most ``rate`` of the strangers: just above
    # the score of the first stranger too many.
    allowed = int(rate * len(strangers))
    held = np.ceil((stranger_best[allowed] + 1e-9) * 1000) / 1000 if allowed < len(stranger_best) else -1.0
    return {"templates": len(extra), "at_site_threshold": at(match_threshold()), "strangers_at_rate": at(held),
            "rate": rate}


def simulate(args: argparse.Namespace, *, finetune: bool) -> dict:
    """One site from scratch: enrol, then the nights. Returns the rows."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from tqdm import tqdm

    from attendance.services import kiosk_check_in
    from portal.models import Employee
    from recognition.learning import learning_nightly
    from recognition.models import FaceImage, LearningCandidate, StrangerSample
    from recognition.pipeline.errors import PipelineError
    from recognition.services import face_recognize

    connection.close()
    settings.DATABASES["default"]["NAME"] = str(args.work / f"site-{'ft' if finetune else 'tpl'}.sqlite3")
    call_command("migrate", verbosity=0)
    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_WITHOUT_LIVENESS = True  # LFW stills: no blink to prove
    settings.ROLLCALL_LEARN_FINETUNE = finetune
    rows = list(csv.DictReader(open(args.root / "identification.csv", newline="")))
    gallery = [r for r in rows if r["role"] == "gallery"]
    if args.limit:
        with_probes = {r["identity"] for r in rows if r["role"] == "probe"}
        gallery = [r for r in gallery if r["identity"] in with_probes][: args.limit * 3]
    only = args.work / "gallery.txt"
    only.write_text("\n".join(r["path"] for r in gallery) + "\n")
    started = time.perf_counter()
    call_command("enroll_folder", str(args.root / "images"), "--only", str(only), "--quiet", "--consent")
    enrol_seconds = time.perf_counter() - started
    Employee.objects.update(biometric_consent_at=timezone.now())
    codes = dict(Employee.objects.filter(faces__isnull=False).values_list("pk", "code"))
    enrolled = set(codes.values())
    probes: dict[str, list[str]] = {}
    for r in rows:
        if r["role"] == "probe" and r["identity"] in enrolled:
            probes.setdefault(r["identity"], []).append(r["path"])
    people = sorted(probes)[: args.limit] if args.limit else sorted(probes)
    arriving, heldout = [], []
    for person in people:
        paths = probes[person]
        half = (len(paths) + 1) // 2 if len(paths) > 1 else 0
        arriving += [(person, p) for p in paths[:half]]
        heldout += [(person, p) for p in paths[half:]]
    strangers = [r["path"] for r in rows if r["role"] == "distractor"][: args.limit]
    half = len(strangers) // 2
    door_strangers, heldout_strangers = strangers[:half], strangers[half:]
    # Spread the arrivals over the nights (each person's in file order), strangers among them.
    visits = sorted([(i, "person", person, path) for i, (person, path) in enumerate(arriving)]
                    + [(i * len(arriving) / max(1, len(door_strangers)), "stranger", None, path)
                       for i, path in enumerate(door_strangers)])
    per_night = np.array_split(np.arange(len(visits)), args.nights)
    truth: dict[dt.datetime, str | None] = {}

    def recognise(path: str):  # noqa: ANN202
        try:
            results = face_recognize(data=(args.root / "images" / path).read_bytes())
        except PipelineError:
            return None
        return min(results, key=lambda r: (r.face.center[0] - 125) ** 2 + (r.face.center[1] - 125) ** 2) if results else None

    def measure() -> dict[str, float]:
        right = wrong = accepted = 0
        for person, path in tqdm(heldout, desc="  held-out", unit="img", leave=False):
            result = recognise(path)
            if result is not None and result.known:
                right += codes.get(result.best.label) == person
                wrong += codes.get(result.best.label) != person
        for path in tqdm(heldout_strangers, desc="  strangers", unit="img", leave=False):
            result = recognise(path)
            accepted += result is not None and result.known
        return {"recognised": right / max(1, len(heldout)), "misidentified": wrong / max(1, len(heldout)),
                "strangers_accepted": accepted / max(1, len(heldout_strangers))}

    bound = None if finetune else ceiling(args.root, codes, arriving, heldout, heldout_strangers)
    nights = [{"night": 0, **measure(), "templates_added": 0, "wrong_templates": 0, "decision": "enrolled",
               "job_seconds": 0.0}]
    start_day = timezone.now() - dt.timedelta(days=args.nights + 1)
    for night, indices in enumerate(per_night, start=1):
        day = start_day + dt.timedelta(days=night)
        for slot, visit in enumerate(tqdm([visits[i] for i in indices], desc=f"night {night} check-ins", unit="visit")):
            _, kind, person, path = visit
            at = day + dt.timedelta(minutes=3 * slot)  # > the repeat window apart
            truth[at] = person
            try:
                kiosk_check_in(frames=[(args.root / "images" / path).read_bytes()], captured_at=at, source="bench")
            except PipelineError:
                pass
        before = {c.pk: (codes.get(c.employee_id), truth.get(c.captured_at)) for c in LearningCandidate.objects.all()}
        started = time.perf_counter()
        run = learning_nightly()
        job_seconds = time.perf_counter() - started
        after = set(LearningCandidate.objects.values_list("pk", flat=True))
        consumed = [before[pk] for pk in before if pk not in after]
        wrong = sum(1 for decided, true in consumed if decided != true)
        nights.append({"night": night, **measure(), "templates_added": run.templates_added,
                       "templates_removed": run.templates_removed, "wrong_templates": wrong if run.templates_added else 0,
                       "decision": run.decision or run.status, "error": run.last_error, "job_seconds": job_seconds,
                       "gate": run.details.get("templates") or run.details.get("before"),
                       "finetuned": run.details.get("finetuned"),
                       "learned_photos": FaceImage.objects.filter(source="learned").count(),
                       "stranger_samples": StrangerSample.objects.count()})
        print(json.dumps(nights[-1]))
    return {"finetune": finetune, "people": len(people), "heldout": len(heldout), "arrivals": len(arriving),
            "door_strangers": len(door_strangers), "heldout_strangers": len(heldout_strangers),
            "enrol_seconds": enrol_seconds, "nights": nights, "ceiling": bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--nights", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--limit", type=int, help="only N people (of 3N enrolled) and N distractors (development runs)")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench-cache" / "adaptation")
    parser.add_argument("--no-finetune", action="store_true", help="only the templates-only row")
    args = parser.parse_args()
    if not (args.root / "identification.csv").is_file():
        sys.exit(f"{args.root}/identification.csv not found: this benchmark needs ../shared/data/lfw")
    args.root = args.root.resolve()
    args.work = Path(tempfile.mkdtemp(prefix="rollcall-adaptation-"))
    os.environ.update({"ROLLCALL_VAR_DIR": str(args.work), "MEDIA_ROOT": str(args.work / "media"),
                       "DJANGO_SETTINGS_MODULE": "portal.settings"})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)  # embedded mode: tasks run in-process, on this machine's CPU
    import django

    django.setup()
    from recognition.engine import get_pipeline
    from recognition.learning import finetune_module

    _cached(get_pipeline(), args.cache)
    results = {"embedder": get_pipeline().embedder.key, "rows": [simulate(args, finetune=False)]}
    if not args.no_finetune and finetune_module() is not None:
        results["rows"].append(simulate(args, finetune=True))
    elif not args.no_finetune:
        results["finetune_skipped"] = "recognition.pipeline.finetune is not importable"
    print("\nrow            night  recognised  misidentified  strangers  +templates (wrong)  decision  job s")
    for row in results["rows"]:
        name = "templates+ft" if row["finetune"] else "templates"
        for n in row["nights"]:
            print(f"{name:14} {n['night']:5}  {100 * n['recognised']:9.2f}%  {100 * n['misidentified']:12.2f}%  "
                  f"{100 * n['strangers_accepted']:8.2f}%  {n['templates_added']:10} ({n['wrong_templates']})  "
                  f"{n['decision']:>8}  {n['job_seconds']:.1f}")
    for row in results["rows"]:
        if bound := row.get("ceiling"):
            site, held = bound["at_site_threshold"], bound["strangers_at_rate"]
            print(f"\nceiling: all {bound['templates']} arriving probes added under their true names (no cap, no "
                  f"safety rule): held-out recognised {100 * site['recognised']:.2f}% at the site's threshold "
                  f"{site['threshold']} (strangers {100 * site['strangers_accepted']:.2f}%); "
                  f"{100 * held['recognised']:.2f}% at {held['threshold']}, the lowest threshold holding strangers "
                  f"at {100 * bound['rate']:.0f}% ({100 * held['strangers_accepted']:.2f}%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
