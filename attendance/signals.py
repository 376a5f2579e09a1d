"""A monitor history row takes its face thumbnail with it, however the row goes (purge, an
employee's erasure cascade, the admin): the file is deleted once the transaction commits."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from attendance.models import RecognitionLog


@receiver(post_delete, sender=RecognitionLog)
def _log_deleted(sender: type[RecognitionLog], instance: RecognitionLog, **kwargs: object) -> None:
    if instance.thumbnail:
        name = instance.thumbnail.name
        storage = instance.thumbnail.storage
        transaction.on_commit(lambda: storage.delete(name))
