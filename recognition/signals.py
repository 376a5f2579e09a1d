"""Erasure: however a FaceImage row goes (the service, the admin, an employee's cascade), its
files are deleted once the transaction commits and every process's gallery index is refreshed.
A signal is used because cascades never call a service."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from recognition.models import FaceImage, GalleryChange, LearningCandidate


@receiver(post_delete, sender=FaceImage)
def _face_deleted(sender: type[FaceImage], instance: FaceImage, **kwargs: object) -> None:
    from recognition.services import _delete_files, gallery_changed

    gallery_changed(employees=[instance.employee_id], op=GalleryChange.Op.REMOVE, face_id=instance.pk)
    transaction.on_commit(lambda: _delete_files(instance))


@receiver(post_delete, sender=LearningCandidate)
def _candidate_deleted(sender: type[LearningCandidate], instance: LearningCandidate, **kwargs: object) -> None:
    from recognition.learning_harvest import forget_files

    transaction.on_commit(lambda: forget_files(instance))
