"""Load through the production stack: doors speaking the edge client's protocol, managers' monitors.

    .venv/bin/python bench/load.py [--json FILE] [--doors 8] [--monitors 50] [--seconds 60]
                                   [--workers 1,2] [--people 50] [--data ../shared/data]

Starts on this machine, loopback only (portal/testing/stack.py): a throw-away PostgreSQL cluster,
a redis-server, TWO Daphne processes and Celery workers (``celery -A portal worker --concurrency
1`` each, beat off), configured by the production environment (DATABASE_URL, REDIS_URL,
MEDIA_ROOT). Then:

- enrols a gallery of N people (LFW from ../shared/data: each identity's gallery photo; its other
  photos are the probes, LFW's distractors the strangers; without ../shared/data the repository's
  fixtures, recognition/fixtures/faces/people), spread over departments, and registers D devices;
- D doors (threads) speak the edge client's own protocol: ``edge_client.portal.PortalClient`` over
  ``/ws/device/``, round-robin over the two Daphne processes, each check-in a burst like the
  client's (2 s at 12 fps = 24 frames, the face cropped 2.2 face widths wide, at most 360 px, JPEG
  quality 88, from the client's own crop/jpeg functions) of a real photo of a real face, shifted a
  pixel or two from frame to frame;
- M monitor websockets (``/ws/monitor/``, session cookies made as Django's login makes them) of admins,
  department managers of different departments and managers without a department, spread over
  both Daphne processes.

Method, for each worker count (1 worker, then a second one started beside it):
1. warm-up: every worker has loaded its models (not measured);
2. **saturated** (closed loop): each door sends its next check-in as soon as it has its answer, at
   most ``--door-rate`` per second, for S seconds. With more doors than workers the queue is never
   empty, so the completions per second are the sustained rate;
3. **at 80 %**: the doors send at 80 % of that rate in all, evenly paced (one in flight per door,
   as the client does; a door whose answer came late sends at once), for S seconds: the latency a
   site running at 80 % of its capacity sees.
Decision latency is the door's: from sending the burst to the decision message.

Monitor delivery is checked after the run against the database: every RecognitionLog row is a
monitor event, which each monitor must have received exactly once if its user may see it (admins:
all; managers: their department's people (portal.permissions.visible_employees), unknown faces)
and never otherwise; device online/offline events go to every monitor, each exactly once.

Liveness is set off (ROLLCALL_LIVENESS=off): the bursts are made of still photos (there are no
blink videos of the gallery's people); ATTENDANCE_REPEAT_WINDOW_SECONDS=1 so that visits alternate
check-in and check-out (writes) instead of being answered "repeated"; ROLLCALL_TORCH_THREADS=1
(``--torch-threads``; torch and ONNX Runtime) so that one worker is one core. The output says so.
The CPU seconds each process spent per check-in (saturated phase) show where the cores went.

Prints a table (and a progress bar while running), writes --json. Every process and temporary
folder is removed at the end, also on Ctrl-C or an error. On a 2-core machine run it tiny while
building: ``--people 5 --doors 2 --monitors 4 --seconds 10 --workers 1``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import websocket  # noqa: E402
from tqdm import tqdm  # noqa: E402

from edge_client.client import CROP_MAX_SIDE, crop_region, jpeg  # noqa: E402
from edge_client.config import EdgeConfig  # noqa: E402
from edge_client.detector import HaarDetector, largest  # noqa: E402
from edge_client.portal import PortalClient, Rejected, Unreachable  # noqa: E402
from portal.testing.stack import Stack, StackUnavailable, production_stack  # noqa: E402

FIXTURES = ROOT / "recognition" / "fixtures" / "faces" / "people"
BURSTS_KEPT = 64  # distinct bursts prepared (each ~0.5 MB of base64)
STRANGER_SHARE = 0.1
MONITOR_ROLES = ("admin", "department", "department", "plain")

SEED = r"""
import json
from pathlib import Path
from django.contrib.auth.models import User
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
SessionStore = import_module(settings.SESSION_ENGINE).SessionStore
from portal.models import Department, Employee
from portal.services import device_create
from recognition.services import face_enroll

spec = json.loads(Path(__SPEC__).read_text())
departments = [Department.objects.create(name=f"Department {d + 1}") for d in range(spec["departments"])]
people = []
for candidate in spec["candidates"]:
    if len(people) >= spec["people"]:
        break
    i = len(people)
    # Person 0 is a manager without a department (sees only themselves and unknown faces); the
    # others are spread over the departments, every (K+1)-th without one.
    slot = (i - 1) % (len(departments) + 1)
    employee = Employee.objects.create(code=f"P{i:05d}", full_name=candidate["name"].replace("_", " "),
                                       department=None if i == 0 or slot == len(departments) else departments[slot],
                                       role="manager" if i == 0 else "employee")
    try:
        face_enroll(employee=employee, data=Path(candidate["gallery"]).read_bytes())
    except Exception as exc:  # the quality gate refused this photo: the next candidate
        employee.delete()
        continue
    people.append({"id": employee.pk, "name": candidate["name"], "department": employee.department_id,
                   "probes": candidate["probes"]})

def session(user):
    # What django.contrib.auth.login stores for a signed-in user (without a request to log).
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key

monitors = []
admin = User.objects.get(username="admin")
counter = {"department": 0, "admin": 0, "plain": 0}
for m in range(spec["monitors"]):
    role = spec["roles"][m % len(spec["roles"])]
    n = counter[role]
    counter[role] += 1
    if role == "admin" and n == 0:
        user = admin  # a superuser
    elif role == "plain" and n == 0 and people:
        user = User.objects.create_user(f"monitor{m}")
        Employee.objects.filter(pk=people[0]["id"]).update(user=user)  # the enrolled manager
    else:
        user = User.objects.create_user(f"monitor{m}")
        department = departments[n % len(departments)] if role == "department" else None
        Employee.objects.create(user=user, code=f"M{m:04d}", full_name=f"Monitor {m}", department=department,
                                role="admin" if role == "admin" else "manager")
    monitors.append({"user_id": user.pk, "role": role, "session": session(user)})

devices = []
for d in range(spec["doors"]):
    device, token = device_create(name=f"Load door {d + 1}")
    devices.append({"id": device.pk, "name": device.name, "token": token})
print(json.dumps({"people": people, "monitors": monitors, "devices": devices}))
"""

DUMP = r"""
import json
from pathlib import Path
from django.contrib.auth.models import User
from attendance.models import RecognitionLog
from portal.permissions import is_admin, is_manager, visible_employees

spec = json.loads(Path(__SPEC__).read_text())
viewers = {}
for user_id in spec["user_ids"]:
    user = User.objects.get(pk=user_id)
    viewers[user_id] = {"admin": is_admin(user), "manager": is_manager(user),
                        "visible": list(visible_employees(user).values_list("pk", flat=True))}
rows = [{"id": r.pk, "employee_id": r.employee_id, "state": r.state, "outcome": r.outcome, "device_id": r.device_id,
         "key": r.key} for r in RecognitionLog.objects.all()]
print(json.dumps({"viewers": viewers, "rows": rows}))
"""


# --- pure accounting (tested on its own) --------------------------------------------------------

def may_see(viewer: dict[str, Any], employee_id: int | None) -> bool:
    """Whether a monitor's user may see a recognition event (portal.permissions: admins see all,
    managers the people they may view and unknown faces; anyone else nothing)."""
    if viewer.get("admin"):
        return True
    if not viewer.get("manager"):
        return False
    return employee_id is None or employee_id in set(viewer.get("visible", ()))


def recognition_accounting(rows: list[dict[str, Any]], monitors: list[dict[str, Any]],
                           received: list[list[int]]) -> dict[str, Any]:
    """Each RecognitionLog row (``id``, ``employee_id``) is one event; ``monitors[i]`` is its viewer
    (see ``may_see``) and ``received[i]`` the event ids that monitor got. Counts what should have
    arrived, what did, and every event lost, duplicated or misdelivered (sent to a monitor that may
    not see it, or naming no row at all)."""
    by_id = {row["id"]: row for row in rows}
    out = {"events": len(rows), "expected": 0, "delivered": 0, "lost": 0, "duplicated": 0, "misdelivered": 0,
           "problems": []}
    for index, (viewer, got) in enumerate(zip(monitors, received, strict=True)):
        counts = Counter(got)
        for row in rows:
            allowed = may_see(viewer, row["employee_id"])
            n = counts.get(row["id"], 0)
            out["expected"] += allowed
            out["delivered"] += n
            if allowed and n == 0:
                out["lost"] += 1
                out["problems"].append({"monitor": index, "event": row["id"], "problem": "lost"})
            elif allowed and n > 1:
                out["duplicated"] += n - 1
                out["problems"].append({"monitor": index, "event": row["id"], "problem": f"received {n} times"})
            elif not allowed and n:
                out["misdelivered"] += n
                out["problems"].append({"monitor": index, "event": row["id"], "problem": "not allowed to see it"})
        for event_id, n in counts.items():
            if event_id not in by_id:
                out["delivered"] += n
                out["misdelivered"] += n
                out["problems"].append({"monitor": index, "event": event_id, "problem": "no such event"})
    out["problems"] = out["problems"][:50]
    return out


def device_accounting(received: list[list[tuple]], devices: Iterable[int]) -> dict[str, Any]:
    """Device online/offline events go to every monitor. An event is identified by (device id,
    online, last_seen_at); the events are those any monitor received, and each monitor must have
    each exactly once. Every door must have been announced online and offline at least once."""
    union: set[tuple] = set().union(*(set(got) for got in received)) if received else set()
    out = {"events": len(union), "lost": 0, "duplicated": 0, "problems": []}
    for index, got in enumerate(received):
        counts = Counter(got)
        for event in union:
            n = counts.get(event, 0)
            if n == 0:
                out["lost"] += 1
                out["problems"].append({"monitor": index, "event": list(event), "problem": "lost"})
            elif n > 1:
                out["duplicated"] += n - 1
                out["problems"].append({"monitor": index, "event": list(event), "problem": f"received {n} times"})
    for device_id in devices:
        for online in (True, False):
            if received and not any(e[0] == device_id and e[1] is online for e in union):
                out["lost"] += len(received)
                out["problems"].append({"device": device_id, "online": online, "problem": "never announced"})
    out["problems"] = out["problems"][:50]
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- data -----------------------------------------------------------------------------------------

def candidates(data: Path | None, people: int) -> tuple[list[dict[str, Any]], list[str], str]:
    """Gallery candidates (name, gallery photo, probe photos; twice as many as needed, since the
    quality gate may refuse some), stranger photos, and where they came from."""
    lfw = data / "lfw" if data is not None else None
    if lfw is not None and (lfw / "identification.csv").exists():
        by_identity: dict[str, dict[str, Any]] = {}
        strangers: list[str] = []
        with open(lfw / "identification.csv") as handle:
            for row in csv.DictReader(handle):
                path = str(lfw / "images" / row["path"])
                if row["role"] == "distractor":
                    strangers.append(path)
                    continue
                entry = by_identity.setdefault(row["identity"], {"name": row["identity"], "gallery": "", "probes": []})
                if row["role"] == "gallery":
                    entry["gallery"] = path
                else:
                    entry["probes"].append(path)
        chosen = [e for _, e in sorted(by_identity.items()) if e["gallery"] and e["probes"]]
        random.Random(7).shuffle(chosen)
        return chosen[: max(people * 2, people + 10)], strangers[:40], f"LFW ({lfw})"
    found = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        photos = sorted(str(p) for p in folder.glob("*.jpg"))
        if len(photos) >= 2:
            found.append({"name": folder.name, "gallery": photos[0], "probes": photos[1:]})
    strangers = [photo for e in found[people:] for photo in e["probes"] + [e["gallery"]]]
    return found[:people], strangers, f"repository fixtures ({FIXTURES}); ../shared/data is absent"


@dataclass
class Burst:
    frames: list[str]  # base64 JPEG, as the edge client sends them
    fps: float
    employee_id: int | None  # who it shows (None: a stranger)


def make_burst(photo: str, employee_id: int | None, detector: HaarDetector, config: EdgeConfig) -> Burst | None:
    """A burst as the edge client builds it from a camera: the face's crop (crop_region), at most
    CROP_MAX_SIDE px, JPEG (the client's jpeg()), burst_seconds x burst_fps frames; a still photo
    shifted by a pixel or two per frame, as a person standing at the door moves."""
    image = cv2.imread(photo)
    if image is None:
        return None
    face = largest(detector.detect(image))
    left, top, right, bottom = crop_region(face.box, image.shape) if face else (0, 0, image.shape[1], image.shape[0])
    crop = image[top:bottom, left:right]
    scale = min(1.0, CROP_MAX_SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    count = max(1, round(config.burst_seconds * config.burst_fps))
    frames = []
    for i in range(count):
        shift = np.float32([[1, 0, (i % 5) - 2], [0, 1, ((i // 5) % 3) - 1]])
        moved = cv2.warpAffine(crop, shift, (crop.shape[1], crop.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        frames.append(base64.b64encode(jpeg(moved)).decode())
    return Burst(frames, float(config.burst_fps), employee_id)


# --- memory ---------------------------------------------------------------------------------------

def _family(pid: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    family, todo = [], [pid]
    while todo:
        current = todo.pop()
        family.append(current)
        todo += children.get(current, [])
    return family


def rss_mib(pid: int) -> float:
    """VmRSS of a process and all its descendants, MiB (0 when it is gone)."""
    total = 0
    for member in _family(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its living descendants, and by
    their children that have exited and been waited for (PostgreSQL's short-lived backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds so far per stack process (with descendants: Celery's pool, PostgreSQL's
    backends) and of this bench process (doors, monitors)."""
    snapshot = {name: cpu_seconds(process.pid) for name, process in stack.processes.items()
                if process.poll() is None}
    own = os.times()
    snapshot["bench"] = own.user + own.system
    return snapshot


def cpu_per_check_in(before: dict[str, float], after: dict[str, float], done: int, seconds: float) -> dict[str, Any]:
    """Where the CPU went during a phase: seconds per completed check-in by process, and the
    cores in use on average (this machine has os.cpu_count())."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    return {"per_check_in_s": {name: round(value / max(done, 1), 4) for name, value in sorted(used.items())},
            "cores_busy": round(sum(used.values()) / max(seconds, 1e-9), 2)}


class MemorySampler(threading.Thread):
    def __init__(self, stack: Stack, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.stack, self.every = stack, every
        self.peak: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        for name, process in list(self.stack.processes.items()):
            if name.startswith(("web", "worker", "redis", "postgres")) and process.poll() is None:
                value = rss_mib(process.pid)
                self.last[name] = value
                self.peak[name] = max(self.peak.get(name, 0.0), value)

    def reset(self) -> None:
        self.peak = dict(self.last)


# --- monitors and doors ---------------------------------------------------------------------------

class Monitor(threading.Thread):
    """One manager's monitor websocket; records every event it receives."""

    def __init__(self, url: str, session: str, role: str) -> None:
        super().__init__(daemon=True)
        self.url, self.session, self.role = url, session, role
        self.recognitions: list[int] = []
        self.devices: list[tuple] = []
        self.received_at: dict[int, float] = {}  # event id -> when it first arrived here (time.time())
        self.other: list[dict[str, Any]] = []
        self.error: str | None = None
        self.stop = threading.Event()
        self.last_event = time.monotonic()
        self.ws = websocket.create_connection(url.replace("http://", "ws://") + "/ws/monitor/", origin=url,
                                              cookie=f"sessionid={session}", timeout=30)

    def run(self) -> None:
        self.ws.settimeout(0.5)
        while not self.stop.is_set():
            try:
                event = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as exc:  # noqa: BLE001 - a dropped monitor is a finding
                if not self.stop.is_set():
                    self.error = repr(exc)
                return
            self.last_event = time.monotonic()
            if event.get("kind") == "recognition":
                self.recognitions.append(event["id"])
                self.received_at.setdefault(event["id"], time.time())
            elif event.get("kind") == "device":
                self.devices.append((event["device_id"], event["online"], event["last_seen_at"]))
            else:
                self.other.append(event)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


@dataclass
class Result:
    sent_at: float
    latency: float
    error: str | None = None
    outcome: str | None = None
    correct: bool | None = None
    key: str = ""
    answered_at: float = 0.0  # time.time() when the decision arrived


@dataclass
class Door:
    index: int
    client: PortalClient
    device_id: int
    results: list[Result] = field(default_factory=list)
    sent: int = 0
    late: int = 0
    last_active: float = field(default_factory=time.monotonic)
    heartbeat_errors: int = 0


class Heartbeats(threading.Thread):
    """An idle door sends a heartbeat every ``every`` seconds, as the edge client does (it keeps the
    websocket answering the server's pings while no check-in is under way)."""

    def __init__(self, door: Door, every: float) -> None:
        super().__init__(daemon=True)
        self.door, self.every = door, every
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            if time.monotonic() - self.door.last_active < self.every:
                continue
            try:
                self.door.client.heartbeat()
            except (Unreachable, Rejected):
                self.door.heartbeat_errors += 1
            self.door.last_active = time.monotonic()


def run_phase(doors: list[Door], bursts: list[Burst], *, seconds: float, interval: float | None,
              door_rate: float, label: str, tag: str) -> tuple[list[Result], float]:
    """Doors send check-ins for ``seconds``: closed loop (``interval`` None: next one when the
    answer came, at most ``door_rate`` per door per second) or paced (one every ``interval``
    seconds per door, starting staggered). Returns the results of check-ins sent in the phase and
    the phase's length (until the last answer)."""
    stop_at = time.monotonic() + seconds
    results: list[Result] = []
    lock = threading.Lock()
    rng = random.Random(zlib.crc32(tag.encode()))

    def door_loop(door: Door) -> None:
        next_at = time.monotonic() + (interval * door.index / len(doors) if interval else 0.0)
        while True:
            now = time.monotonic()
            if next_at >= stop_at:
                return
            if now < next_at:
                time.sleep(next_at - now)
            elif interval and now - next_at > 0.05:
                door.late += 1
            burst = bursts[rng.randrange(len(bursts))]
            door.sent += 1
            key = f"load-{tag}-{door.index}-{door.sent}"
            captured = dt.datetime.now(dt.timezone.utc).isoformat()
            started = time.monotonic()
            try:
                answer = door.client.deliver("check_in", key, captured, {"fps": burst.fps, "frames": burst.frames})
                result = Result(started, time.monotonic() - started, outcome=answer.get("outcome"),
                                correct=answer.get("employee_id") == burst.employee_id, key=key,
                                answered_at=time.time())
            except (Unreachable, Rejected) as exc:
                result = Result(started, time.monotonic() - started, error=str(exc)[:200])
            door.last_active = time.monotonic()
            with lock:
                results.append(result)
            next_at = (next_at + interval) if interval else max(started + 1.0 / door_rate, time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=door_loop, args=(door,), daemon=True) for door in doors]
    for thread in threads:
        thread.start()
    with tqdm(total=round(seconds), desc=label, unit="s", leave=True, file=sys.stderr, disable=seconds < 1,
              bar_format="{desc}: {bar} {n_fmt}/{total_fmt} s {postfix}") as bar:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            elapsed = min(seconds, time.monotonic() - started)
            bar.n = round(elapsed)
            with lock:
                done = [r.latency for r in results if r.error is None]
                errors = sum(r.error is not None for r in results)
            bar.set_postfix_str(f"{len(done)} done, {len(done) / max(elapsed, 1e-3):.2f}/s, "
                                f"p95 {percentile(done, 95) or 0:.2f} s, {errors} errors", refresh=True)
    return results, time.monotonic() - started


def summarise(results: list[Result], seconds: float, offered: float | None = None) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    latencies = [r.latency for r in ok]
    return {
        "seconds": round(seconds, 2), "offered_per_s": round(offered, 3) if offered else None,
        "check_ins": len(ok), "errors": len(results) - len(ok),
        "error_samples": sorted({r.error for r in results if r.error})[:5],
        "per_s": round(len(ok) / seconds, 3) if seconds else 0.0,
        "p50_s": _round(percentile(latencies, 50)), "p95_s": _round(percentile(latencies, 95)),
        "p99_s": _round(percentile(latencies, 99)), "max_s": _round(max(latencies) if latencies else None),
        "outcomes": dict(Counter(r.outcome for r in ok)),
        "recognised_correctly": round(sum(bool(r.correct) for r in ok) / len(ok), 3) if ok else None,
    }


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def warm_up(stack: Stack, doors: list[Door], bursts: list[Burst], workers: list[str], tag: str) -> None:
    """Until every worker has answered a check-in (its models are loaded): rounds of one check-in per door."""
    for round_ in range(8):
        if all(b"attendance.kiosk_check_in" in (stack.logs / f"{w}.log").read_bytes() and
               b"succeeded" in (stack.logs / f"{w}.log").read_bytes() for w in workers):
            return
        run_phase(doors, bursts, seconds=0.01, interval=None, door_rate=1.0, label=f"warm-up {round_ + 1}",
                  tag=f"{tag}w{round_}")
    print("warning: not every worker answered during the warm-up", file=sys.stderr)


# --- the run --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--doors", type=int, default=8)
    parser.add_argument("--monitors", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each measured phase")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--departments", type=int, default=3)
    parser.add_argument("--door-rate", type=float, default=1.0, help="most check-ins per second from one door")
    parser.add_argument("--torch-threads", type=int, default=1, help="ROLLCALL_TORCH_THREADS of each worker")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args(argv)
    worker_counts = sorted({int(w) for w in args.workers.split(",")})
    if args.doors < 1 or args.monitors < 0 or not worker_counts or worker_counts[0] < 1:
        parser.error("need at least one door and one worker")

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    base = Path(tempfile.mkdtemp(prefix="rollcall-load-"))
    monitors: list[Monitor] = []
    doors: list[Door] = []
    heartbeats: list[Heartbeats] = []
    sampler: MemorySampler | None = None
    notes = [
        "liveness off (ROLLCALL_LIVENESS=off): bursts are still photos, no blink videos of the gallery's people",
        "ATTENDANCE_REPEAT_WINDOW_SECONDS=1: visits alternate check-in/check-out (writes), not 'repeated'",
        f"ROLLCALL_TORCH_THREADS={args.torch_threads} per worker (torch and ONNX Runtime threads); "
        "workers: celery prefork --concurrency 1, beat off",
        "sustained rate: closed loop (each door sends its next burst when answered, "
        f"at most {args.door_rate}/s per door); then paced at 80% of it",
        "latency: door-side, from sending the burst over the websocket to the decision message",
        "an idle door sends a heartbeat every heartbeat_seconds (30 s), as the edge client does",
    ]
    report: dict[str, Any] = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                              "notes": notes, "runs": []}
    try:
        found, strangers, source = candidates(args.data if args.data.is_dir() else None, args.people)
        report["data"] = source
        spec_path = base / "spec.json"
        spec_path.write_text(json.dumps({
            "candidates": found, "people": args.people, "departments": max(1, args.departments),
            "monitors": args.monitors, "roles": MONITOR_ROLES, "doors": args.doors}))
        env = {"ROLLCALL_LIVENESS": "off", "ATTENDANCE_REPEAT_WINDOW_SECONDS": "1",
               "ROLLCALL_TASK_WAIT_SECONDS": "120", "ROLLCALL_TORCH_THREADS": str(args.torch_threads),
               "ROLLCALL_SCHEDULER": "off"}
        print(f"starting PostgreSQL, Redis, 2 Daphne, {worker_counts[0]} Celery worker(s) in {base} ...", flush=True)
        with production_stack(base / "stack", extra_env=env, worker_options=("--concurrency", "1"), webs=2,
                              workers=worker_counts[0]) as stack:
            report["processes"] = stack.pids()
            report["base"] = str(base)
            print(f"stack up: {json.dumps({'pids': stack.pids(), 'base': str(base), 'pg': [str(p) for p in stack.temp_dirs]})}",
                  flush=True)
            seed = json.loads(stack.shell(SEED.replace("__SPEC__", repr(str(spec_path)))).strip().splitlines()[-1])
            people = seed["people"]
            if not people:
                raise RuntimeError("no gallery photo passed the enrolment gate")
            print(f"gallery: {len(people)} people from {source}; {len(seed['devices'])} doors; "
                  f"{len(seed['monitors'])} monitors ({dict(Counter(m['role'] for m in seed['monitors']))})", flush=True)

            detector, config = HaarDetector(min_face=60), EdgeConfig()
            bursts: list[Burst] = []
            pool = [(photo, p["id"]) for p in people for photo in p["probes"][:3]]
            random.Random(1).shuffle(pool)
            for photo, employee_id in pool[:BURSTS_KEPT]:
                if (burst := make_burst(photo, employee_id, detector, config)) is not None:
                    bursts.append(burst)
            unknown = [b for photo in strangers[: max(1, round(len(bursts) * STRANGER_SHARE))]
                       if (b := make_burst(photo, None, detector, config)) is not None]
            bursts += unknown
            sizes = [sum(len(f) for f in b.frames) for b in bursts]
            report["bursts"] = {"count": len(bursts), "strangers": len(unknown), "frames": len(bursts[0].frames),
                                "fps": bursts[0].fps, "mean_kib_base64": round(statistics.mean(sizes) / 1024, 1)}

            # Monitors first (they must see the doors come online), over both web processes.
            for m, entry in enumerate(seed["monitors"]):
                monitor = Monitor(stack.urls[m % len(stack.urls)], entry["session"], entry["role"])
                monitor.user_id = entry["user_id"]  # type: ignore[attr-defined]
                monitors.append(monitor)
                monitor.start()
            for d, device in enumerate(seed["devices"]):
                client = PortalClient(stack.urls[d % len(stack.urls)], device["token"], transport="websocket",
                                      timeout=180)
                doors.append(Door(d, client, device["id"]))
            for door in doors:
                beats = Heartbeats(door, config.heartbeat_seconds)
                heartbeats.append(beats)
                beats.start()
            sampler = MemorySampler(stack)
            sampler.start()

            running = list(range(worker_counts[0]))
            measured: list[Result] = []
            for count in worker_counts:
                for i in range(len(running), count):
                    name = f"worker{i + 1}"
                    print(f"starting {name} ...", flush=True)
                    stack.start_worker(name)
                    running.append(i)
                names = ["worker" if i == 0 else f"worker{i + 1}" for i in range(count)]
                warm_up(stack, doors, bursts, names, tag=f"w{count}")
                sampler.sample()
                sampler.reset()
                before = cpu_snapshot(stack)
                results, seconds = run_phase(doors, bursts, seconds=args.seconds, interval=None, door_rate=args.door_rate,
                                             label=f"{count} worker(s), saturated", tag=f"s{count}")
                saturated = summarise(results, seconds)
                saturated["cpu"] = cpu_per_check_in(before, cpu_snapshot(stack), saturated["check_ins"], seconds)
                measured += results
                memory_saturated = dict(sampler.peak)
                rate = saturated["per_s"]
                at_80 = None
                if rate > 0:
                    offered = 0.8 * rate
                    interval = len(doors) / offered
                    results, seconds = run_phase(doors, bursts, seconds=args.seconds, interval=interval,
                                                 door_rate=args.door_rate, label=f"{count} worker(s), at 80%",
                                                 tag=f"e{count}")
                    at_80 = summarise(results, seconds, offered)
                    measured += results
                    at_80["late_sends"] = sum(d.late for d in doors)
                    for door in doors:
                        door.late = 0
                report["runs"].append({"workers": count, "saturated": saturated, "at_80": at_80,
                                       "memory_peak_mib": {k: round(v, 1) for k, v in sorted(sampler.peak.items())},
                                       "memory_peak_saturated_mib": {k: round(v, 1) for k, v in sorted(memory_saturated.items())}})

            # The doors leave (offline events), then every monitor event is accounted for.
            for beats in heartbeats:
                beats.stop.set()
                beats.join(30)
            report["heartbeat_errors"] = sum(d.heartbeat_errors for d in doors)
            for door in doors:
                door.client.close()
            user_ids = [m.user_id for m in monitors]  # type: ignore[attr-defined]
            spec_path.write_text(json.dumps({"user_ids": user_ids}))
            dump = json.loads(stack.shell(DUMP.replace("__SPEC__", repr(str(spec_path)))).strip().splitlines()[-1])
            rows = [r for r in dump["rows"] if r["state"] == "done"]
            viewers = [dump["viewers"][str(u)] for u in user_ids]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until everything expected arrived, then 2 s of quiet (duplicates)
                complete = True
                for m, v in zip(monitors, viewers, strict=True):
                    got = set(m.recognitions)
                    complete = complete and sum(1 for e in m.devices if not e[1]) >= len(doors) and all(
                        r["id"] in got for r in rows if may_see(v, r["employee_id"]))
                quiet = all(time.monotonic() - m.last_event > 2 for m in monitors)
                if complete and quiet:
                    break
                time.sleep(0.25)
            for monitor in monitors:
                monitor.close()
            delivery = recognition_accounting(rows, viewers, [m.recognitions for m in monitors])
            devices = device_accounting([m.devices for m in monitors], [d.device_id for d in doors])
            # Each measured check-in's monitor event, against the moment its door had the answer.
            answered = {r.key: r.answered_at for r in measured if r.error is None}
            key_of = {row["id"]: row["key"] for row in rows}
            lags = [at - answered[key_of[event]] for m in monitors for event, at in m.received_at.items()
                    if key_of.get(event) in answered]
            report["monitors"] = {
                "count": len(monitors), "roles": dict(Counter(m.role for m in monitors)),
                "over_web_processes": len(stack.urls),
                "recognition": delivery, "device": devices,
                "after_answer_p50_s": _round(percentile(lags, 50)), "after_answer_p95_s": _round(percentile(lags, 95)),
                "after_answer_max_s": _round(max(lags) if lags else None),
                "per_monitor": [{"role": m.role, "received": len(m.recognitions), "devices": len(m.devices),
                                 "allowed": sum(may_see(v, r["employee_id"]) for r in rows), "error": m.error}
                                for m, v in zip(monitors, viewers, strict=True)],
                "dropped_sockets": sum(m.error is not None for m in monitors),
            }
            report["processes"] = {name: process.pid for name, process in stack.processes.items()}
            report["recognition_logs"] = {"done": len(rows), "pending": len(dump["rows"]) - len(rows)}
            sampler.stop.set()
        if len(report["runs"]) >= 2 and report["runs"][0]["saturated"]["per_s"]:
            report["scaling_ratio"] = round(report["runs"][-1]["saturated"]["per_s"] / report["runs"][0]["saturated"]["per_s"], 3)
        print_table(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
            print(f"wrote {args.json}")
        failed = (any(r["saturated"]["errors"] or (r["at_80"] or {}).get("errors") for r in report["runs"])
                  or report["monitors"]["recognition"]["lost"] or report["monitors"]["recognition"]["duplicated"]
                  or report["monitors"]["recognition"]["misdelivered"] or report["monitors"]["device"]["lost"]
                  or report["monitors"]["device"]["duplicated"] or report["monitors"]["dropped_sockets"]
                  or report.get("heartbeat_errors"))
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process ...", file=sys.stderr, flush=True)
        return 130
    except StackUnavailable as exc:
        print(f"cannot start the production stack: {exc}", file=sys.stderr)
        return 2
    finally:
        if sampler is not None:
            sampler.stop.set()
        for beats in heartbeats:
            beats.stop.set()
        for door in doors:
            door.client.close()
        for monitor in monitors:
            monitor.stop.set()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def print_table(report: dict[str, Any]) -> None:
    print()
    print(f"data: {report.get('data')}; bursts: {report.get('bursts')}")
    for note in report["notes"]:
        print(f"note: {note}")
    header = f"{'workers':>7} {'phase':<10} {'offered/s':>9} {'done':>6} {'/s':>7} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for run in report["runs"]:
        for phase in ("saturated", "at_80"):
            row = run[phase]
            if row is None:
                continue
            print(f"{run['workers']:>7} {phase:<10} {row['offered_per_s'] or '-':>9} {row['check_ins']:>6} {row['per_s']:>7.3f} "
                  f"{row['p50_s'] or 0:>7.2f} {row['p95_s'] or 0:>7.2f} {row['p99_s'] or 0:>7.2f} {row['errors']:>6}")
        print(f"{'':>7} memory peak MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in run["memory_peak_mib"].items()))
        if cpu := run["saturated"].get("cpu"):
            print(f"{'':>7} saturated, CPU s per check-in: " + ", ".join(
                f"{k} {v:.3f}" for k, v in cpu["per_check_in_s"].items()) + f"; cores busy {cpu['cores_busy']}")
    if "scaling_ratio" in report:
        print(f"scaling ratio ({report['runs'][-1]['workers']} vs {report['runs'][0]['workers']} workers): {report['scaling_ratio']}")
    print(f"door heartbeat errors: {report.get('heartbeat_errors', 0)}")
    mon = report.get("monitors")
    if mon:
        rec, dev = mon["recognition"], mon["device"]
        print(f"monitors: {mon['count']} {mon['roles']} over {mon['over_web_processes']} web processes; "
              f"recognition events {rec['events']}: expected deliveries {rec['expected']}, delivered {rec['delivered']}, "
              f"lost {rec['lost']}, duplicated {rec['duplicated']}, misdelivered {rec['misdelivered']}; "
              f"device events {dev['events']}: lost {dev['lost']}, duplicated {dev['duplicated']}; "
              f"monitor event after the door's answer: p50 {mon['after_answer_p50_s']} s, "
              f"p95 {mon['after_answer_p95_s']} s, max {mon['after_answer_max_s']} s; "
              f"dropped sockets {mon['dropped_sockets']}")


if __name__ == "__main__":
    sys.exit(main())
