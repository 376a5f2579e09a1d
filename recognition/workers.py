"""What pages and the API call: each stages the upload and runs one task on a worker.

Detection, embedding and matching happen on Celery workers (in-process in the embedded mode);
the web process only stages bytes and waits for the typed answer.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from portal.models import Employee
from recognition import tasks
from recognition.jobs import run, stage
from recognition.models import FaceImage


def enroll(*, employee: Employee, data: bytes, filename: str = "photo.jpg",
           source: str = FaceImage.Source.UPLOAD, created_by: AbstractBaseUser | None = None) -> FaceImage:
    answer = run(tasks.face_enroll, staged=stage(data), employee_id=employee.pk, filename=filename, source=source,
                 created_by_id=created_by.pk if created_by is not None and created_by.is_authenticated else None)
    return FaceImage.objects.get(pk=answer["face_id"])


def recognize(*, data: bytes, k: int = 5) -> list[dict[str, Any]]:
    return run(tasks.face_recognize, staged=stage(data), k=k)["faces"]


def verify(*, data: bytes, employee: Employee) -> dict[str, Any]:
    return run(tasks.face_verify, staged=stage(data), employee_id=employee.pk)


def detect(*, data: bytes) -> list[dict[str, Any]]:
    return run(tasks.face_detect, staged=stage(data))["faces"]
