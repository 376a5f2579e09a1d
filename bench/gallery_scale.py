"""What a large gallery costs: galleries of 1k, 10k, 100k people through RollCall's own code.

    .venv/bin/python bench/gallery_scale.py [--sizes 1000,10000,100000] [--processes 2] [--json FILE]
                                            [--hub-rows 20000] [--db auto|postgres|sqlite]

Per gallery size it reports
- build: the time a process takes to build its index from the database rows (``gallery_index()``
  from cold: read every embedding, fit the hub-normalisation cohort), and the index's memory
  (the process's RSS before and after);
- search: exact search time per query (median and p95 over real probe faces, top-5);
- propagation: P separate reader processes (this script with ``--reader``: Django set up on the
  same database, the models loaded, ``gallery_index()`` polled every 10 ms as a web or worker
  process would on its next recognition) hold the index; this process enrols a new person through
  ``recognition.services.face_enroll`` (a real LFW photo), and each reader reports when it first
  answers a second photo of that person with their name; also whether it took the journal
  (incremental) or rebuilt (full), and its start-up time (python start to index built, models
  included);
- storage: bytes per FaceImage row in PostgreSQL (``pg_total_relation_size``: heap, TOAST and
  indexes; a throw-away cluster like the integration tests', when PostgreSQL is installed).
Then, on a gallery of ``--hub-rows`` photos, the hub offsets of a sampled cohort against the exact
ones (every photo against every other, blocked): max/mean error, correlation, and how many top-1
decisions (person and known/unknown at the embedder's threshold) change.

Real and synthetic faces. A few hundred real LFW faces (../shared/data/lfw, identification.csv:
gallery photos and probes of the identities with two or more images) are embedded once with the
configured embedder and cached under var/bench/. The rest of each gallery is synthetic, drawn so
that its similarity statistics resemble real embeddings: a synthetic person's photo is
mean + (between-person deviation) + (within-person deviation), each deviation a random
combination of the real ones (a Gaussian with exactly the real between-person covariance of the
identities' mean vectors, and the within-person covariance of photos around their identity's mean),
then L2-normalised. So synthetic faces live in the span of real ones, with the real anisotropy
(hub structure) and the real spread of impostor scores; the table prints the impostor score
mean/std of real-real and synthetic-synthetic pairs to show how close they are.
Without ../shared/data the benchmark says so and exits.

Memory: vectors are float32 (100k x 640 = 256 MB, plus a float16 copy where it is faster); the
O(n^2) exact hub offsets are computed in blocks (~64 MB of scores at a time).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path("/usr/lib/postgresql").is_dir() else None


def rss_mb() -> float:
    """This process's resident memory (MB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_postgres(work: Path) -> tuple[subprocess.Popen, str, Path]:
    """A throw-away PostgreSQL cluster on a free loopback port: (process, DATABASE_URL, its folder)."""
    home = Path(tempfile.mkdtemp(prefix="rollcall-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(home / "data"), "-U", "rollcall", "--auth=trust",
                                "-E", "UTF8"]), check=True, capture_output=True)
    log = open(work / "postgres.log", "ab")
    process = subprocess.Popen(as_postgres([str(PG_BIN / "postgres"), "-D", str(home / "data"), "-p", str(port),
                                            "-k", str(home), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("PostgreSQL did not start: see " + str(work / "postgres.log")) from None
            time.sleep(0.2)
    time.sleep(0.5)
    subprocess.run(as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "rollcall",
                                "rollcall"]), check=True, capture_output=True)
    return process, f"postgres://rollcall@127.0.0.1:{port}/rollcall", home


# --- real and synthetic faces ---------------------------------------------------------------------

def real_faces(lfw: Path, count: int, cache_dir: Path) -> dict[str, object]:
    """Embeddings of real LFW faces (cached): ``gallery`` (one per identity) and ``probe`` (another
    photo of the same identity), plus the last identity held back as the person to enrol."""
    from recognition.engine import get_pipeline
    from recognition.pipeline.errors import PipelineError
    from recognition.pipeline.image import load_image

    embedder = get_pipeline().embedder
    import hashlib

    cache = cache_dir / f"gallery_scale_{hashlib.sha256(embedder.key.encode()).hexdigest()[:12]}_{count}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return {key: data[key] for key in data.files}
    with open(lfw / "identification.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_identity: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if row["role"] in ("gallery", "probe"):
            by_identity.setdefault(row["identity"], {"gallery": [], "probe": []})[row["role"]].append(row["path"])
    identities = [name for name, roles in sorted(by_identity.items()) if roles["gallery"] and roles["probe"]][:count + 1]
    from tqdm import tqdm

    pipeline = get_pipeline()
    gallery, probes, names, paths = [], [], [], []
    for name in tqdm(identities, desc="embedding real LFW faces (once, cached)", unit="person"):
        try:
            pair = [pipeline.embed_single(load_image((lfw / "images" / by_identity[name][role][0]).read_bytes())).vector
                    for role in ("gallery", "probe")]
        except PipelineError:
            continue
        gallery.append(pair[0])
        probes.append(pair[1])
        names.append(name)
        paths.append(by_identity[name]["gallery"][0])
    data = {"gallery": np.array(gallery[:-1], np.float32), "probe": np.array(probes[:-1], np.float32),
            "names": np.array(names[:-1]), "new_path": np.array(paths[-1]), "new_probe": probes[-1].astype(np.float32)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


class Synthetic:
    """Synthetic faces with the real ones' statistics (see the module docstring). Real identities
    have one gallery photo and one probe each: the identity mean is their average, the
    within-person deviations are the two photos' differences from it."""

    def __init__(self, gallery: np.ndarray, probes: np.ndarray, seed: int = 0) -> None:
        means = (gallery + probes) / 2
        self.mean = means.mean(axis=0)
        self.between = (means - self.mean) / np.sqrt(max(1, len(means) - 1))
        within = np.vstack([gallery - means, probes - means])
        self.within = within / np.sqrt(max(1, len(means)))  # one degree of freedom per identity
        self.rng = np.random.default_rng(seed)

    def people(self, n: int) -> np.ndarray:
        """Identity centres (n, dim), unnormalised."""
        return self.mean + self.rng.standard_normal((n, len(self.between))).astype(np.float32) @ self.between

    def photos(self, centres: np.ndarray) -> np.ndarray:
        """One photo of each centre (n, dim), unit length."""
        from recognition.pipeline.embedding import l2_normalise

        noise = self.rng.standard_normal((len(centres), len(self.within))).astype(np.float32) @ self.within
        return l2_normalise(centres + noise)


def impostor_stats(vectors: np.ndarray, rng: np.random.Generator, pairs: int = 20000) -> tuple[float, float]:
    a, b = rng.integers(0, len(vectors), pairs), rng.integers(0, len(vectors), pairs)
    keep = a != b
    scores = np.einsum("ij,ij->i", vectors[a[keep]], vectors[b[keep]])
    return float(scores.mean()), float(scores.std())


# --- the database ---------------------------------------------------------------------------------

def fill_gallery(people: int, real: dict[str, np.ndarray], synthetic: Synthetic) -> tuple[int, np.ndarray, list[int]]:
    """Replace the gallery by ``people`` people (the real ones first, one photo each), written as
    FaceImage rows the way enrolment stores them. Returns (rows, their vectors, employee ids)."""
    from django.db import connection, transaction
    from tqdm import tqdm

    from portal.models import Employee
    from recognition.engine import get_pipeline
    from recognition.models import FaceImage, GalleryChange
    from recognition.services import gallery_changed

    embedder = get_pipeline().embedder
    with connection.cursor() as cursor:
        for model in (GalleryChange, FaceImage, Employee):
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table} CASCADE")
            else:
                cursor.execute(f"DELETE FROM {table}")
    n_real = min(people, len(real["gallery"]))
    chunk = 5000
    all_vectors, employee_ids = [], []
    with tqdm(total=people, desc=f"writing a {people:,}-person gallery", unit="person") as bar:
        for start in range(0, people, chunk):
            stop = min(people, start + chunk)
            real_rows = max(0, min(stop, n_real) - start)
            vectors = real["gallery"][start:start + real_rows] if real_rows else np.zeros((0, embedder.dim), np.float32)
            if stop - start - real_rows:
                vectors = np.vstack([vectors, synthetic.photos(synthetic.people(stop - start - real_rows))])
            with transaction.atomic():
                staff = Employee.objects.bulk_create([Employee(code=f"B{i:07d}", full_name=f"Bench person {i}")
                                                      for i in range(start, stop)])
                FaceImage.objects.bulk_create([
                    FaceImage(employee=person, image="bench/none.jpg", crop="bench/none.png", content_hash=f"{i:064x}",
                              embedding=vector.astype(np.float32).tobytes(), embedder=embedder.name,
                              embedder_version=embedder.version, detection_score=1.0, box=[0, 0, 1, 1],
                              face_size=100.0, sharpness=50.0, is_primary=True)
                    for i, (person, vector) in enumerate(zip(staff, vectors, strict=True), start=start)], batch_size=1000)
            all_vectors.append(vectors)
            employee_ids += [person.pk for person in staff]
            bar.update(stop - start)
    gallery_changed()  # a new gallery: every process rebuilds
    return people, np.vstack(all_vectors), employee_ids


def postgres_row_cost() -> dict[str, float] | None:
    """Bytes per FaceImage row in PostgreSQL: in all, and in the heap, TOAST and indexes."""
    from django.db import connection

    from recognition.engine import get_pipeline

    vector_bytes = get_pipeline().embedder.dim * 4

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE recognition_faceimage")
        cursor.execute("""SELECT count(*), pg_total_relation_size('recognition_faceimage'),
                                 pg_relation_size('recognition_faceimage'),
                                 pg_indexes_size('recognition_faceimage'),
                                 coalesce(pg_total_relation_size(reltoastrelid), 0)
                          FROM recognition_faceimage, pg_class WHERE pg_class.relname = 'recognition_faceimage'
                          GROUP BY reltoastrelid""")
        rows, total, heap, indexes, toast = cursor.fetchone()
    return {"rows": rows, "bytes_per_row": total / rows, "heap_bytes_per_row": heap / rows,
            "toast_bytes_per_row": toast / rows, "index_bytes_per_row": indexes / rows,
            "vector_bytes": vector_bytes}


# --- one size -------------------------------------------------------------------------------------

def start_readers(count: int, env: dict[str, str], target: int, probe_file: Path) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--reader", "--target", str(target),
                              "--probe", str(probe_file), "--started-at", str(time.time())], env=env, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(count)]


def bench_size(people: int, args: argparse.Namespace, real: dict[str, np.ndarray], synthetic: Synthetic,
               work: Path, env: dict[str, str]) -> dict[str, object]:
    from portal.models import Employee
    from recognition import selectors
    from recognition.engine import get_pipeline, match_threshold
    from recognition.services import face_enroll

    rows, _, _ = fill_gallery(people, real, synthetic)
    result: dict[str, object] = {"people": people, "rows": rows}
    # build from the database rows, as a process does at start-up
    selectors._loaded = None
    before = rss_mb()
    started = time.perf_counter()
    index = selectors.gallery_index()
    result["build_s"] = time.perf_counter() - started
    result["index_rss_mb"] = rss_mb() - before
    vectors = index.vectors
    started = time.perf_counter()
    selectors.build_index(vectors, index.labels, dim=vectors.shape[1], cohort=selectors.cohort_norm())
    result["build_from_memory_s"] = time.perf_counter() - started
    result["cohort_rows"] = int(len(index.fitted.labels)) if index.fitted is not None else 0
    # exact search per query
    probes = real["probe"][: args.queries]
    index.search(probes[0], k=5)
    times = []
    for probe in probes:
        started = time.perf_counter()
        index.search(probe, k=5)
        times.append((time.perf_counter() - started) * 1000)
    result["search_ms_p50"] = statistics.median(times)
    result["search_ms_p95"] = float(np.percentile(times, 95))
    result["half_prescan"] = index._half is not None
    # a new person reaches every process
    newcomer = Employee.objects.create(code="NEWCOMER", full_name="The newcomer")
    probe_file = work / "newcomer_probe.npy"
    np.save(probe_file, real["new_probe"])
    readers = start_readers(args.processes, env, newcomer.pk, probe_file)
    try:
        ready = []
        for reader in readers:
            line = reader.stdout.readline()
            if not line.strip():
                raise RuntimeError("a reader process failed: " + reader.stderr.read()[-3000:])
            ready.append(json.loads(line))
        data = (Path(args.lfw) / "images" / str(real["new_path"])).read_bytes()
        get_pipeline()
        started = time.perf_counter()
        face_enroll(employee=newcomer, data=data)
        enrolled_at = time.time()
        result["enrol_s"] = time.perf_counter() - started
        seen = []
        for reader in readers:
            out, err = reader.communicate(timeout=300)
            if not out.strip():
                raise RuntimeError("a reader process failed: " + err[-3000:])
            seen.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    result["propagation_s"] = [s["seen_at"] - enrolled_at for s in seen]
    result["propagation_max_s"] = max(result["propagation_s"])
    result["reader_loads"] = [s["loads"] for s in seen]
    result["reader_update_s"] = [s["update_s"] for s in seen]
    result["worker_startup_s"] = [r["startup_s"] for r in ready]
    result["worker_models_s"] = [r["models_s"] for r in ready]
    result["worker_index_build_s"] = [r["index_s"] for r in ready]
    result["worker_rss_mb"] = [r["rss_mb"] for r in ready]
    result["worker_index_rss_mb"] = [r["index_rss_mb"] for r in ready]
    result["postgres"] = postgres_row_cost()
    known = selectors.gallery_index().decide(real["new_probe"], threshold=match_threshold())
    result["newcomer_recognised_here"] = bool(known.known and known.best.label == newcomer.pk)
    return result


def reader_main(args: argparse.Namespace) -> None:
    """A process holding the index (``--reader``): report start-up, then poll until the newcomer is
    recognised; prints one JSON line at each stage."""
    import django

    django.setup()
    from recognition import selectors
    from recognition.engine import get_pipeline, match_threshold

    models_started = time.time()
    get_pipeline()
    models_s = time.time() - models_started
    before = rss_mb()
    started = time.time()
    index = selectors.gallery_index()
    index_s = time.time() - started
    probe = np.load(args.probe)
    threshold = match_threshold()
    assert not (index.decide(probe, threshold=threshold).known and index.decide(probe, threshold=threshold).best.label == args.target)
    print(json.dumps({"startup_s": time.time() - args.started_at, "models_s": models_s, "index_s": index_s,
                      "rss_mb": rss_mb(), "index_rss_mb": rss_mb() - before}), flush=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        started = time.perf_counter()
        index = selectors.gallery_index()
        update_s = time.perf_counter() - started
        answer = index.decide(probe, threshold=threshold)
        if answer.known and answer.best.label == args.target:
            print(json.dumps({"seen_at": time.time(), "loads": selectors.index_loads, "update_s": update_s}), flush=True)
            return
        time.sleep(0.01)
    sys.exit("the newcomer was never recognised")


# --- hub offsets: sampled vs exact ----------------------------------------------------------------

def bench_hubs(rows: int, real: dict[str, np.ndarray], synthetic: Synthetic) -> dict[str, object]:
    from recognition.engine import cohort_norm, get_pipeline
    from recognition.pipeline.matching import CohortNorm, GalleryIndex

    base = cohort_norm() or CohortNorm()
    n_real = min(rows, len(real["gallery"]))
    centres = synthetic.people(rows - n_real)
    vectors = np.vstack([real["gallery"][:n_real], synthetic.photos(centres)]).astype(np.float32)
    labels = np.arange(rows)
    # probes: second photos of real people and of 1000 synthetic ones, and 1000 strangers
    some = np.random.default_rng(5).choice(len(centres), min(1000, len(centres)), replace=False)
    probes = np.vstack([real["probe"][:n_real], synthetic.photos(centres[some]),
                        synthetic.photos(synthetic.people(1000))]).astype(np.float32)
    threshold = get_pipeline().embedder.threshold
    started = time.perf_counter()
    exact = CohortNorm(neighbours=base.neighbours, weight=base.weight, max_cohort=rows, max_rows=rows).offsets(vectors, labels)
    exact_s = time.perf_counter() - started
    exact_index = GalleryIndex(vectors, labels, half=False)
    exact_index.offsets, exact_index._offset = exact, True
    want = [exact_index.decide(p, threshold=threshold) for p in probes]
    result: dict[str, object] = {"rows": rows, "probes": len(probes), "exact_s": exact_s, "threshold": threshold,
                                 "offset_std": float(exact.std()), "samples": []}
    plain = GalleryIndex(vectors, labels, half=False)
    plain_changed = sum((d.best.label, d.known) != (w.best.label, w.known)
                        for d, w in zip((plain.decide(p, threshold=threshold) for p in probes), want, strict=True))
    result["decisions_changed_without_offsets"] = plain_changed
    for size in sorted({base.cohort_size(rows), base.cohort_size(100_000), 2000}, reverse=True):
        if size >= rows:
            continue
        norm = CohortNorm(neighbours=base.neighbours, weight=base.weight, max_cohort=size, max_rows=max(rows, base.max_rows))
        started = time.perf_counter()
        sampled = norm.offsets(vectors, labels)
        sampled_s = time.perf_counter() - started
        index = GalleryIndex(vectors, labels, half=False)
        index.offsets, index._offset = sampled, True
        got = [index.decide(p, threshold=threshold) for p in probes]
        error = np.abs(sampled - exact)
        result["samples"].append({
            "cohort": size, "seconds": sampled_s, "max_error": float(error.max()), "mean_error": float(error.mean()),
            "correlation": float(np.corrcoef(sampled, exact)[0, 1]),
            "top1_changed": sum(g.best.label != w.best.label for g, w in zip(got, want, strict=True)),
            "decisions_changed": sum((g.best.label, g.known) != (w.best.label, w.known) for g, w in zip(got, want, strict=True)),
        })
    return result


# --- main -----------------------------------------------------------------------------------------

def print_table(results: list[dict[str, object]], hubs: dict[str, object] | None, stats: dict[str, float]) -> None:
    print(f"\nsynthetic vs real impostor scores: real {stats['real_mean']:.3f} ± {stats['real_std']:.3f}, "
          f"synthetic {stats['synthetic_mean']:.3f} ± {stats['synthetic_std']:.3f} (mean ± std of cosine)")
    header = (f"{'people':>8} {'build s':>8} {'index MB':>9} {'search ms':>10} {'p95':>6} {'new person s':>13} "
              f"{'path':>12} {'start-up s':>11} {'worker MB':>10} {'PG B/row':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        paths = ",".join("incr" if load["full"] == 1 and load["incremental"] >= 1 else "FULL" for load in r["reader_loads"])
        pg = f"{r['postgres']['bytes_per_row']:.0f}" if r.get("postgres") else "-"
        print(f"{r['people']:>8,} {r['build_s']:>8.2f} {r['index_rss_mb']:>9.0f} {r['search_ms_p50']:>10.2f} "
              f"{r['search_ms_p95']:>6.2f} {r['propagation_max_s']:>13.3f} {paths:>12} "
              f"{max(r['worker_startup_s']):>11.1f} {max(r['worker_rss_mb']):>10.0f} {pg:>9}")
    if hubs:
        print(f"\nhub offsets on {hubs['rows']:,} photos, {hubs['probes']:,} probes: exact {hubs['exact_s']:.1f} s, "
              f"offset std {hubs['offset_std']:.4f}; without any offsets {hubs['decisions_changed_without_offsets']} "
              "decisions differ from the exact ones")
        for s in hubs["samples"]:
            print(f"  sample {s['cohort']:>6,}: {s['seconds']:.2f} s, error max {s['max_error']:.4f} "
                  f"mean {s['mean_error']:.4f}, correlation {s['correlation']:.3f}, top-1 changed {s['top1_changed']}, "
                  f"decisions changed {s['decisions_changed']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="gallery sizes in people, comma-separated")
    parser.add_argument("--processes", type=int, default=2, help="reader processes that must see a new enrolment")
    parser.add_argument("--hub-rows", type=int, default=20_000, help="gallery size of the sampled vs exact offsets (0: skip)")
    parser.add_argument("--real", type=int, default=400, help="real LFW people to embed (cached)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--db", choices=["auto", "postgres", "sqlite"], default="auto")
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started-at", type=float, default=time.time(), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        return reader_main(args)
    if not (args.lfw / "identification.csv").is_file():
        print(f"{args.lfw}/identification.csv not found: this benchmark needs ../shared/data/lfw (real faces); skipped.")
        return None
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="rollcall-gallery-scale-"))
    postgres = None
    use_pg = args.db == "postgres" or (args.db == "auto" and PG_BIN is not None and (PG_BIN / "postgres").exists())
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    try:
        if use_pg:
            postgres, url, pg_home = start_postgres(work)
            os.environ["DATABASE_URL"] = url
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{work / 'gallery.sqlite3'}"
        os.environ.update({"ROLLCALL_VAR_DIR": str(work / "var"), "MEDIA_ROOT": str(work / "media"),
                           "DJANGO_SETTINGS_MODULE": "portal.settings"})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        real = real_faces(args.lfw, args.real, ROOT / "var" / "bench")
        synthetic = Synthetic(real["gallery"], real["probe"])
        rng = np.random.default_rng(9)
        real_stats = impostor_stats(real["gallery"], rng)
        synthetic_stats = impostor_stats(synthetic.photos(synthetic.people(2000)), rng)
        stats = {"real_mean": real_stats[0], "real_std": real_stats[1],
                 "synthetic_mean": synthetic_stats[0], "synthetic_std": synthetic_stats[1]}
        env = {**os.environ}
        results = []
        for size in sizes:
            results.append(bench_size(size, args, real, synthetic, work, env))
            print(json.dumps({k: v for k, v in results[-1].items()}, default=str))
        hubs = bench_hubs(args.hub_rows, real, synthetic) if args.hub_rows else None
        print_table(results, hubs, stats)
        if args.json:
            from recognition.engine import get_pipeline

            args.json.write_text(json.dumps({"embedder": get_pipeline().embedder.key, "database": "postgresql" if use_pg else "sqlite",
                                             "processes": args.processes, "cpu_count": os.cpu_count(),
                                             "impostor_scores": stats, "sizes": results, "hubs": hubs}, indent=2))
    finally:
        from django.db import connections

        try:
            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        if postgres is not None:
            postgres.terminate()
            postgres.wait(30)
            shutil.rmtree(pg_home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return None


if __name__ == "__main__":
    main()
