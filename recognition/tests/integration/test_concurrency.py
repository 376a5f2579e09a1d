"""Overlapping recognition-type requests against a real server, as two kiosks, a door and a
gallery upload produce them: the embedded default (Daphne, SQLite, no Redis, tasks in-process)
and the production stack (PostgreSQL, Redis, a Celery worker, Daphne).

Each of ROUNDS rounds sends 4 requests at once (device check-ins over REST with idempotency
keys, the same key twice; enrolment-code redemptions, two racing for one code; the same photo
uploaded twice for one employee; recognize / verify / detect), then sends the same 4 again one
after another (a device's retries). Asserted: no server error, exactly one committed outcome per
key, code and photo, and every answer equal to what the database holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import pytest
import requests

from conftest import video_frames
from recognition.tests.integration.test_production_stack import _free_port, _wait_port, production_stack

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable
VIDEO = ROOT / "attendance" / "fixtures" / "blink_2s.mp4"
ROUNDS = 10
OVERLAP = 4

pytestmark = pytest.mark.integration

SEED = """
import json
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from portal.models import Employee
from portal.services import device_create
from recognition.pipeline.errors import PipelineError
from recognition.services import enrolment_code_issue, face_enroll

spec = json.loads({spec!r})
admin = User.objects.filter(username="admin").first() or User.objects.create_superuser("admin", "a@example.com", "integration-pw-1")
Employee.objects.get_or_create(user=admin, defaults={{"code": "ADM", "full_name": "Ada Admin", "role": "admin"}})
sam = Employee.objects.create(code="SAM", full_name="Sam Selfie")
face_enroll(employee=sam, data=open(spec["sam"], "rb").read())
joe = Employee.objects.create(code="JOE", full_name="Joe Biden")
face_enroll(employee=joe, data=open(spec["joe"], "rb").read())
probe = Employee.objects.create(code="PROBE", full_name="Probe")
good = []
for path in spec["candidates"]:  # photos the gallery accepts (quality gate), found with the real models
    try:
        face_enroll(employee=probe, data=open(path, "rb").read())
        good.append(path)
    except PipelineError:
        pass
probe.delete()
targets = [Employee.objects.create(biometric_consent_at=timezone.now(), code=f"T{{r}}", full_name=f"Target {{r}}").pk for r in range(spec["rounds"])]
codes = []
for r in range(spec["rounds"]):
    coded = Employee.objects.create(biometric_consent_at=timezone.now(), code=f"C{{r}}", full_name=f"Coded {{r}}")
    codes.append([coded.pk, enrolment_code_issue(employee=coded, minutes=240)[1]])
print(json.dumps({{"token": Token.objects.get_or_create(user=admin)[0].key, "device": device_create(name="Door")[1],
                  "joe": joe.pk, "sam": sam.pk, "good": good, "targets": targets, "codes": codes}}))
"""

DUMP = """
import json
from attendance.models import AttendanceEvent, RecognitionLog
from recognition.models import EnrolmentCode, FaceImage
print(json.dumps({
    "logs": [[r.key, r.state, r.answer] for r in RecognitionLog.objects.filter(key__isnull=False)],
    "events": AttendanceEvent.objects.count(),
    "faces": [[f.pk, f.employee_id, f.source, f.content_hash, f.image.name, f.crop.name] for f in FaceImage.objects.all()],
    "codes": [[c.employee_id, c.face_id, c.used_at is not None, c.request_key] for c in EnrolmentCode.objects.all()],
}))
"""


@dataclass
class Site:
    url: str
    manage: Callable[..., str]
    media: Path
    log: Path
    seed: dict = field(default_factory=dict)


def _embedded(base: Path) -> Iterator[Site]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))},
           "ROLLCALL_VAR_DIR": str(base / "var"), "MEDIA_ROOT": str(base / "media"),
           "ATTENDANCE_REPEAT_WINDOW_SECONDS": "1"}

    def manage(*args: str) -> str:
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                              text=True).stdout

    manage("migrate", "--noinput", "-v0")
    port, log = _free_port(), base / "portal.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
                                   cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, 90, process)
        yield Site(f"http://127.0.0.1:{port}", manage, base / "media", log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _production(base: Path) -> Iterator[Site]:
    # Several tasks at once on the worker (threads), and enough patience for a queue of bursts.
    for stack in production_stack(base, extra_env={"ROLLCALL_TASK_WAIT_SECONDS": "120", "ATTENDANCE_REPEAT_WINDOW_SECONDS": "1"},
                                  worker_options=("--pool", "threads", "--concurrency", "2")):
        def manage(*args: str, stack: dict = stack) -> str:
            return subprocess.run([*stack["manage"], *args], env=stack["env"], check=True, capture_output=True,
                                  text=True, cwd=ROOT).stdout

        yield Site(stack["url"], manage, stack["media"], stack["logs"] / "web.log")


@pytest.fixture(scope="module", params=["embedded", "production"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, people) -> Iterator[Site]:
    base = tmp_path_factory.mktemp(request.param)
    sam = base / "sam.jpg"
    cv2.imwrite(str(sam), video_frames(VIDEO)[0])
    candidates = [str(p) for name in ("rose_leslie", "kit_harington", "barack_obama", "alex_lacamoire", "joe_biden")
                  for p in people[name]]
    spec = json.dumps({"sam": str(sam), "joe": str(people["joe_biden"][0]), "candidates": candidates, "rounds": ROUNDS})
    for site in (_embedded if request.param == "embedded" else _production)(base):
        site.seed = json.loads(site.manage("shell", "-c", SEED.format(spec=spec)).strip().splitlines()[-1])
        assert len(site.seed["good"]) >= 4, site.seed
        yield site


@dataclass
class Answer:
    kind: str
    tag: str  # what must have exactly one committed outcome: a key, a code, an (employee, photo)
    status: int
    body: dict


class Client:
    def __init__(self, site: Site) -> None:
        self.url = site.url
        self.user = {"Authorization": f"Token {site.seed['token']}"}
        self.door = {"Authorization": f"Device {site.seed['device']}"}
        burst = video_frames(VIDEO)[2:50:2]  # 24 frames at 12 fps with the blink in it
        self.frames = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for frame in burst]

    def _post(self, kind: str, tag: str, path: str, headers: dict, **kwargs) -> Answer:
        response = requests.post(f"{self.url}{path}", headers=headers, timeout=600, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:300]}
        return Answer(kind, tag, response.status_code, body)

    def check_in(self, key: str) -> Answer:
        return self._post("check_in", key, "/api/v1/check-ins", self.door, data={"key": key, "fps": "12"},
                          files=[("frames", (f"{i}.jpg", frame, "image/jpeg")) for i, frame in enumerate(self.frames)])

    def redeem(self, code: str, key: str, photo: str) -> Answer:
        return self._post("redeem", code, "/api/v1/device/enrol", self.door, data={"code": code, "key": key},
                          files={"photo": ("photo.jpg", Path(photo).read_bytes(), "image/jpeg")})

    def upload(self, employee: int, photo: str) -> Answer:
        return self._post("upload", f"{employee}:{photo}", "/api/v1/faces", self.user, data={"employee": employee},
                          files={"image": ("photo.jpg", Path(photo).read_bytes(), "image/jpeg")})

    def recognize(self, photo: str) -> Answer:
        return self._post("recognize", photo, "/api/v1/recognize", self.user,
                          files={"image": ("photo.jpg", Path(photo).read_bytes(), "image/jpeg")})

    def verify(self, employee: int, photo: str) -> Answer:
        return self._post("verify", photo, "/api/v1/verify", self.user, data={"employee": employee},
                          files={"image": ("photo.jpg", Path(photo).read_bytes(), "image/jpeg")})

    def detect(self, photo: str) -> Answer:
        return self._post("detect", photo, "/api/v1/detect", self.user,
                          files={"image": ("photo.jpg", Path(photo).read_bytes(), "image/jpeg")})


def _round(client: Client, seed: dict, people, r: int) -> list[Callable[[], Answer]]:
    good, joe_photo = seed["good"], str(people["joe_biden"][1])
    employee, code = seed["codes"][r]
    target, photo = seed["targets"][r], good[r % len(good)]
    if r % 3 == 0:  # a door's retry racing its original; two doors racing for one code
        return [lambda: client.check_in(f"round{r}-a"), lambda: client.check_in(f"round{r}-a"),
                lambda: client.redeem(code, f"redeem{r}-a", photo), lambda: client.redeem(code, f"redeem{r}-b", photo)]
    if r % 3 == 1:  # the same photo uploaded twice at once, beside recognition
        return [lambda: client.upload(target, photo), lambda: client.upload(target, photo),
                lambda: client.recognize(joe_photo), lambda: client.verify(seed["joe"], joe_photo)]
    return [lambda: client.check_in(f"round{r}-c"), lambda: client.redeem(code, f"redeem{r}-c", photo),
            lambda: client.detect(photo), lambda: client.upload(target, good[(r + 1) % len(good)])]


def _overlap(calls: list[Callable[[], Answer]]) -> list[Answer]:
    answers: list[Answer | BaseException | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(index: int) -> None:
        barrier.wait()
        try:
            answers[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 - a transport failure is a finding, asserted below
            answers[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    assert all(isinstance(a, Answer) for a in answers), answers
    return answers  # type: ignore[return-value]


def test_overlapping_recognition_requests_are_served_like_sequential_ones(site: Site, people) -> None:
    client, seed = Client(site), site.seed
    answers: list[Answer] = []
    for r in range(ROUNDS):
        calls = _round(client, seed, people, r)
        answers += _overlap(calls)
        answers += [call() for call in calls]  # then the same again, one after another (retries)
        health = requests.get(f"{site.url}/health/", timeout=60)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    errors = [a for a in answers if a.status >= 500]
    print(f"\n{site.url}: {ROUNDS} rounds, {len(answers)} requests ({ROUNDS * OVERLAP} overlapping), "
          f"{len(errors)} server errors; statuses {sorted({a.status for a in answers})}")
    assert errors == []

    db = json.loads(site.manage("shell", "-c", DUMP).strip().splitlines()[-1])
    # Check-ins: one stored answer per key, and every answer for the key is that one.
    logs = {key: (state, answer) for key, state, answer in db["logs"]}
    assert len(logs) == len(db["logs"])
    check_ins = [a for a in answers if a.kind == "check_in"]
    for a in check_ins:
        assert a.status == 200 and logs[a.tag] == ("done", a.body), (a, logs.get(a.tag))
    # Every recognised, live check-in stores one event: a repeat inside the window too (attendance.days
    # groups it into its visit), so the events are the check-ins answered in, out or repeated.
    stored_events = sum(1 for _, answer in logs.values() if answer["outcome"] in ("checked_in", "checked_out", "repeated"))
    assert db["events"] == stored_events and stored_events > 0
    assert {a.body["outcome"] for a in check_ins} <= {"checked_in", "checked_out", "repeated"}

    faces = {pk: (employee, source) for pk, employee, source, *_ in db["faces"]}
    # Codes: exactly one redemption per code committed; the winner's retries get the same photo.
    for code in {a.tag for a in answers if a.kind == "redeem"}:
        tries = [a for a in answers if a.kind == "redeem" and a.tag == code]
        won = {a.body["face_id"] for a in tries if a.status == 201}
        assert len(won) == 1, tries
        assert all(a.status == 201 or a.body["code"] == "invalid_code" for a in tries), tries
        face_id = won.pop()
        employee = next(e for e, c in seed["codes"] if c == code)
        assert [(e, f) for e, f, used, _ in db["codes"] if e == employee] == [(employee, face_id)]
        assert faces[face_id] == (employee, "device")
        assert [pk for pk, (e, _) in faces.items() if e == employee] == [face_id]
    # Uploads: one photo stored per (employee, photo); the others are told duplicate_image.
    for tag in {a.tag for a in answers if a.kind == "upload"}:
        tries = [a for a in answers if a.kind == "upload" and a.tag == tag]
        created = [a for a in tries if a.status == 201]
        assert len(created) == 1, tries
        assert all(a.status == 201 or a.body["code"] == "duplicate_image" for a in tries), tries
        assert faces[created[0].body["id"]][0] == int(tag.split(":")[0])
    for target in seed["targets"]:
        stored = [pk for pk, (e, _) in faces.items() if e == target]
        assert sorted(stored) == sorted({a.body["id"] for a in answers if a.kind == "upload" and a.status == 201
                                         and a.body["employee_id"] == target})
    # Recognition answers the same whether overlapping or not (scores move a little as the gallery
    # grows between rounds: hub normalisation; detection does not depend on the gallery).
    for tag in {a.tag for a in answers if a.kind == "detect"}:
        bodies = [a.body for a in answers if a.kind == "detect" and a.tag == tag]
        assert all(body == bodies[0] for body in bodies) and len(bodies[0]["faces"]) == 1, bodies
    recognized = [a.body["faces"][0] for a in answers if a.kind == "recognize"]
    assert recognized and all(face["known"] and face["employee_id"] == seed["joe"] for face in recognized)
    assert all(a.status == 200 and a.body["same"] for a in answers if a.kind == "verify")

    # No file without its row, no staged upload left behind.
    stored_files = {name for *_, image, crop in db["faces"] for name in (image, crop)}
    on_disk = {str(p.relative_to(site.media)) for p in (site.media / "faces").rglob("*") if p.is_file()}
    assert on_disk == stored_files
    staging = site.media / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert "Traceback" not in site.log.read_text(errors="replace")
