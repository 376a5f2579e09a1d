"""The dispatch seam (recognition/jobs.py) in the embedded default, enrolment codes used exactly
once, the re-embedding heartbeat, the nightly housekeeping, the in-process scheduler and /health/,
on the real models and real photos."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest
from celery._state import get_current_task
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from portal.models import Employee
from recognition import jobs, workers
from recognition.engine import get_pipeline
from recognition.models import EnrolmentCode, FaceImage, ReembedJob
from recognition.services import (
    EnrolmentClaim,
    EnrolmentCodeRejected,
    enrolment_code_claim,
    enrolment_code_issue,
    enrolment_code_release,
    face_enroll,
    gallery_reembed,
    gallery_reembed_start,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _files(under: str = "") -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / under
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture()
def ana() -> Employee:
    return Employee.objects.create(biometric_consent_at=timezone.now(), code="E-1", full_name="Ana Example")


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    """This process's recognition outcomes and the cache (device lockouts) start empty."""
    jobs.health.__init__()
    cache.clear()
    yield
    jobs.health.__init__()
    cache.clear()


def test_overlapping_calls_in_threads_answer_like_sequential_ones(people: dict[str, list[Path]]) -> None:
    """What broke the embedded default: tasks run in-process from several threads at once."""
    photos = [people["joe_biden"][0], people["rose_leslie"][0], people["kit_harington"][0], people["barack_obama"][0]]
    expected = [workers.detect(data=photo.read_bytes()) for photo in photos]
    answers: dict[int, object] = {}

    def call(index: int) -> None:
        try:
            answers[index] = workers.detect(data=photos[index % 4].read_bytes())
        except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
            answers[index] = exc

    for _round in range(3):
        answers.clear()
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert [answers[i] for i in range(4)] == expected
        assert [workers.detect(data=photo.read_bytes()) for photo in photos] == expected
    assert get_current_task() is None  # no Celery task state pushed on the way
    assert _files("staging") == []
    assert jobs.health.snapshot()["failures"] == 0


def test_an_enrolment_code_is_used_exactly_once_with_its_photo(ana: Employee, people: dict[str, list[Path]]) -> None:
    entry, code = enrolment_code_issue(employee=ana)
    face = workers.enroll_with_code(device_name="Door", code=code, data=people["joe_biden"][0].read_bytes(), key="k-0001")
    entry.refresh_from_db()
    assert entry.face_id == face.pk and entry.used_by_device == "Door" and face.source == FaceImage.Source.DEVICE
    # the same request again (the device missed the answer) gets the photo; any other is refused
    again = workers.enroll_with_code(device_name="Door", code=code, data=people["joe_biden"][0].read_bytes(), key="k-0001")
    assert again.pk == face.pk
    with pytest.raises(EnrolmentCodeRejected):
        workers.enroll_with_code(device_name="Door", code=code, data=people["joe_biden"][1].read_bytes(), key="k-0002")
    assert FaceImage.objects.count() == 1


def test_a_refused_photo_frees_the_code_and_stores_nothing(ana: Employee, people: dict[str, list[Path]],
                                                           faces_dir: Path) -> None:
    entry, code = enrolment_code_issue(employee=ana)
    with pytest.raises(jobs.TaskRejected) as refused:
        workers.enroll_with_code(device_name="Door", code=code, data=(faces_dir / "README.md").read_bytes(), key="k-1")
    assert refused.value.code == "invalid_image"
    entry.refresh_from_db()
    assert entry.used_at is None and entry.face_id is None and FaceImage.objects.count() == 0
    assert _files() == []
    face = workers.enroll_with_code(device_name="Door", code=code, data=people["joe_biden"][0].read_bytes(), key="k-2")
    assert EnrolmentCode.objects.get(pk=entry.pk).face_id == face.pk


def test_a_claim_is_exclusive_and_lost_races_do_not_lock_the_device_out(ana: Employee) -> None:
    _, code = enrolment_code_issue(employee=ana)
    first = enrolment_code_claim(device_name="Door", code=code, key="a-1")
    for attempt in range(8):  # more than the lockout allows: a real code that is taken is not a guess
        with pytest.raises(EnrolmentCodeRejected) as lost:
            enrolment_code_claim(device_name="Door", code=code, key=f"b-{attempt}")
        assert lost.value.code == "invalid_code"
    # the same key while its first request is still at work: try again later (503), not "used"
    with pytest.raises(jobs.RecognitionUnavailable):
        enrolment_code_claim(device_name="Door", code=code, key="a-1")
    assert enrolment_code_release(entry=first) is None
    assert enrolment_code_claim(device_name="Door", code=code, key="c-1").used_by_device == "Door"
    for attempt in range(5):  # wrong codes do count
        with pytest.raises(EnrolmentCodeRejected):
            enrolment_code_claim(device_name="Door", code="000000" if code != "000000" else "111111", key=f"w-{attempt}")
    with pytest.raises(EnrolmentCodeRejected) as locked:
        enrolment_code_claim(device_name="Door", code=code, key="d-1")
    assert locked.value.code == "too_many_attempts"


def test_a_photo_whose_claim_was_given_up_is_not_stored(ana: Employee, people: dict[str, list[Path]]) -> None:
    """The caller stopped waiting and freed the code: a worker finishing later must not store the
    photo under it (the code would be used twice)."""
    _, code = enrolment_code_issue(employee=ana)
    entry = enrolment_code_claim(device_name="Door", code=code, key="k-1")
    claim = EnrolmentClaim(code_id=entry.pk, claimed_at=entry.used_at)
    assert enrolment_code_release(entry=entry) is None
    with pytest.raises(EnrolmentCodeRejected):
        face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes(), claim=claim)
    assert FaceImage.objects.count() == 0 and _files() == []


def test_a_photo_stored_under_the_claim_keeps_the_code_used(ana: Employee, people: dict[str, list[Path]]) -> None:
    """The worker stored the photo but its answer came too late: the caller answers with that photo."""
    _, code = enrolment_code_issue(employee=ana)
    entry = enrolment_code_claim(device_name="Door", code=code, key="k-1")
    face = face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes(),
                       claim=EnrolmentClaim(code_id=entry.pk, claimed_at=entry.used_at))
    assert enrolment_code_release(entry=entry) == face
    entry.refresh_from_db()
    assert entry.used_at is not None and entry.face_id == face.pk


def _stale(face: FaceImage) -> None:
    FaceImage.objects.filter(pk=face.pk).update(embedder="dlib", embedder_version="old", embedding=b"\0" * 512)


def test_a_job_whose_worker_died_is_failed_visibly_and_resumed(ana: Employee, people: dict[str, list[Path]]) -> None:
    face = face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    _stale(face)
    long_ago = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS + 60)
    dead = ReembedJob.objects.create(status=ReembedJob.Status.RUNNING, total=1, heartbeat_at=long_ago)
    started = timezone.now()
    job = gallery_reembed_start()
    assert job is not None and job.pk != dead.pk
    dead.refresh_from_db()
    assert dead.status == ReembedJob.Status.FAILED and "no heartbeat since" in dead.last_error
    job.refresh_from_db()
    assert job.status == ReembedJob.Status.FINISHED and job.done == 1 and job.heartbeat_at >= started
    assert FaceImage.objects.get(pk=face.pk).embedder == get_pipeline().embedder.name


def test_a_live_job_blocks_a_second_start_and_a_taken_over_job_stops(ana: Employee, people: dict[str, list[Path]]) -> None:
    face = face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    _stale(face)
    live = ReembedJob.objects.create(status=ReembedJob.Status.RUNNING, heartbeat_at=timezone.now())
    assert gallery_reembed_start() is None
    ReembedJob.objects.filter(pk=live.pk).update(status=ReembedJob.Status.FAILED)
    assert gallery_reembed(job=live).status == ReembedJob.Status.FAILED  # declared dead: it does nothing
    assert FaceImage.objects.get(pk=face.pk).embedder == "dlib"


def test_the_nightly_job_removes_orphaned_staged_uploads_and_resumes_dead_jobs(ana: Employee,
                                                                             people: dict[str, list[Path]]) -> None:
    old = default_storage.save("staging/left-by-a-crash.bin", ContentFile(b"x"))
    fresh = default_storage.save("staging/in-flight.bin", ContentFile(b"y"))
    two_hours_ago = time.time() - 7200
    os.utime(default_storage.path(old), (two_hours_ago, two_hours_ago))
    face = face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    _stale(face)
    ReembedJob.objects.create(status=ReembedJob.Status.QUEUED,
                              heartbeat_at=timezone.now() - dt.timedelta(days=1))
    result = jobs.run("attendance.close_yesterday")
    assert result["staged_purged"] == 1 and result["jobs_resumed"] == 1
    assert not default_storage.exists(old) and default_storage.exists(fresh)
    assert list(ReembedJob.objects.order_by("pk").values_list("status", flat=True)) == ["failed", "finished"]


def test_the_in_process_scheduler_runs_a_due_nightly_job_once() -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from portal import scheduler

    # (a transactional test starts from an empty table; the migration creates this same row)
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="15", hour="0")
    nightly, _ = PeriodicTask.objects.get_or_create(task="attendance.close_yesterday",
                                                    defaults={"name": "Close yesterday's attendance", "crontab": crontab})
    now = timezone.now()
    nightly.last_run_at = now - dt.timedelta(days=2)
    nightly.save()
    assert scheduler.run_due(since=now) == ["Close yesterday's attendance"]
    nightly.refresh_from_db()
    assert nightly.last_run_at >= now and nightly.total_run_count == 1
    assert scheduler.run_due(since=now) == []  # done for this day
    assert 0 < scheduler.seconds_to_next(since=now) <= scheduler.POLL_SECONDS
    # a process that read the schedule before another one ran it does not run it again
    stale_view = PeriodicTask.objects.filter(pk=nightly.pk, last_run_at=now - dt.timedelta(days=2))
    assert stale_view.update(last_run_at=now) == 0
    assert not scheduler.should_start()  # tests and management commands never start it


def test_health_says_degraded_when_recognition_keeps_failing(settings, people: dict[str, list[Path]],
                                                            tmp_path: Path) -> None:
    client = Client()
    answer = client.get("/health/")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert answer.json()["checks"]["database"]["ok"] and answer.json()["checks"]["recognition"]["ok"]
    settings.ROLLCALL_EMBEDDER = "facenet"
    settings.ROLLCALL_EMBEDDER_OPTIONS = {"checkpoint": str(tmp_path / "missing.pt")}
    get_pipeline.cache_clear()
    try:
        for _ in range(3):
            with pytest.raises(jobs.TaskRejected) as broken:
                workers.detect(data=people["joe_biden"][0].read_bytes())
            assert broken.value.code == "model_unavailable"
        answer = client.get("/health/")
        assert answer.status_code == 503 and answer.json()["status"] == "degraded"
        recognition = answer.json()["checks"]["recognition"]
        assert recognition["failing"] and recognition["failures"] == 3 and not recognition["ok"]
    finally:
        get_pipeline.cache_clear()
    settings.ROLLCALL_EMBEDDER, settings.ROLLCALL_EMBEDDER_OPTIONS = "fused", {}
    workers.detect(data=people["joe_biden"][0].read_bytes())  # it answers again: healthy again
    assert client.get("/health/").status_code == 200
