"""The nightly job's purges, run by the embedded scheduler's "Nightly learning" entry: learning
captures older than ROLLCALL_LEARN_KEEP_DAYS (files too), stale stranger samples, and cached
gallery maps of galleries no longer current (the newest map of each model stays)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from recognition.gallery_map import current_model, gallery_map_build
from recognition.models import LearningCandidate, LearningRun, StrangerSample
from recognition.services import face_enroll
from recognition.tests.learning.test_nightly import _sam_visits

pytestmark = pytest.mark.django_db(transaction=True)


def _nightly_entry_due() -> None:
    """The beat entry as its migration makes it (a transactional test starts from empty tables), due now."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="2")
    PeriodicTask.objects.exclude(name="Nightly learning").update(enabled=False)
    entry, _ = PeriodicTask.objects.get_or_create(name="Nightly learning",
                                                  defaults={"task": "recognition.learning_nightly", "crontab": crontab})
    entry.last_run_at = timezone.now() - dt.timedelta(days=2)
    entry.save()


def test_the_scheduled_nightly_job_purges_old_captures_strangers_and_stale_maps(site, people, blink_frames, check_in,
                                                                               settings) -> None:
    from portal import scheduler

    settings.ROLLCALL_LIVENESS = "off"
    settings.ROLLCALL_LEARN_KEEP_DAYS = 30
    _sam_visits(blink_frames, check_in)
    for hours, image in enumerate((people["rose_leslie"] * 3)[:3]):  # a stranger at the door three times
        assert check_in([image.read_bytes()] * 2, hours_ago=20 + hours).outcome == "unknown"
    candidates = list(LearningCandidate.objects.order_by("captured_at"))
    strangers = list(StrangerSample.objects.order_by("captured_at"))
    assert len(candidates) == 3 and len(strangers) == 3
    old = timezone.now() - dt.timedelta(days=31)
    LearningCandidate.objects.filter(pk=candidates[0].pk).update(captured_at=old)
    StrangerSample.objects.filter(pk=strangers[0].pk).update(captured_at=old)
    StrangerSample.objects.filter(pk=strangers[1].pk).update(embedder_version="an embedder no longer used")
    assert default_storage.exists(candidates[0].crop.name)

    # Two maps of the same people: the gallery changed in between, so the first is stale.
    name, version, threshold = current_model()
    ids = [site[code].pk for code in ("SAM", "OBA", "JOE", "ALX")]
    gallery_map_build(employee_ids=ids, embedder=name, embedder_version=version, threshold=threshold)
    face_enroll(employee=site["OBA"], data=people["barack_obama"][1].read_bytes())
    gallery_map_build(employee_ids=ids, embedder=name, embedder_version=version, threshold=threshold)
    maps = _maps()
    assert len(maps) == 2
    two_hours_ago = time.time() - 7200
    os.utime(default_storage.path(maps[0]), (two_hours_ago, two_hours_ago))

    _nightly_entry_due()
    assert scheduler.run_due(since=timezone.now()) == ["Nightly learning"]
    run = LearningRun.objects.get()
    assert run.status == LearningRun.Status.FINISHED, run.last_error
    purged = (run.harvest["purged"], run.harvest["strangers_purged"], run.harvest["maps_purged"])
    assert purged == (1, 2, 1), run.harvest
    assert not LearningCandidate.objects.filter(pk=candidates[0].pk).exists()
    assert not default_storage.exists(candidates[0].crop.name)  # the crop file went with it
    assert list(StrangerSample.objects.values_list("pk", flat=True)) == [strangers[2].pk]
    assert _maps() == [maps[1]]  # the newest map of the model stays


def _maps() -> list[str]:
    found = []
    for root, _, files in os.walk(default_storage.path("gallery_maps")):
        found += [os.path.relpath(os.path.join(root, f), default_storage.path("")) for f in files]
    return sorted(found, key=lambda path: default_storage.get_modified_time(path))
