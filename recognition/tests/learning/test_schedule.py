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
