"""The nightly learning's schedule: a django-celery-beat entry (a data migration), which the
embedded default's in-process scheduler runs without a broker."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_nightly_learning_is_scheduled_at_two_in_the_site_time_zone() -> None:
    from django.conf import settings as django_settings
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(name="Nightly learning")
    assert entry.task == "recognition.learning_nightly" and entry.enabled
    assert (entry.crontab.minute, entry.crontab.hour, str(entry.crontab.timezone)) == ("0", "2", django_settings.TIME_ZONE)


def test_the_embedded_scheduler_runs_the_nightly_learning_when_due() -> None:
    import datetime as dt

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from portal import scheduler
    from recognition.models import LearningRun

    PeriodicTask.objects.exclude(name="Nightly learning").update(enabled=False)
    PeriodicTask.objects.filter(name="Nightly learning").update(last_run_at=timezone.now() - dt.timedelta(days=2))
    assert scheduler.run_due(since=timezone.now()) == ["Nightly learning"]
    run = LearningRun.objects.get()
    assert run.status == LearningRun.Status.FINISHED and run.decision == "no change", run.last_error
    assert scheduler.run_due(since=timezone.now()) == []  # each due time once
