"""What pages and the API call: each stages the upload and runs one task through the dispatch seam.

Detection, embedding and matching happen on Celery workers (in the calling thread in the embedded
default, see recognition/jobs.py); the web process only stages bytes and waits for the typed answer.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from portal.models import Employee
from recognition.jobs import run, stage
from recognition.models import EnrolmentCode, FaceImage
from recognition.services import consent_required, enrolment_code_claim, enrolment_code_release


def enroll(*, employee: Employee, data: bytes, filename: str = "photo.jpg",
           source: str = FaceImage.Source.UPLOAD, created_by: AbstractBaseUser | None = None,
           claim: EnrolmentCode | None = None) -> FaceImage:
    """Add a photo to ``employee``'s gallery; with ``claim`` (a claimed enrolment code) the photo
    and the code's use commit together, or neither does. Refused (``no_consent``) for a person
    who has not consented to biometric processing: every way a photo comes in passes here."""
    consent_required(employee)
    answer = run("recognition.face_enroll", staged=stage(data), employee_id=employee.pk, filename=filename, source=source,
                 created_by_id=created_by.pk if created_by is not None and created_by.is_authenticated else None,
                 enrolment_code_id=claim.pk if claim is not None else None,
                 claimed_at=claim.used_at.isoformat() if claim is not None else None)
    return FaceImage.objects.get(pk=answer["face_id"])


def recognize(*, data: bytes, k: int = 5) -> list[dict[str, Any]]:
    return run("recognition.face_recognize", staged=stage(data), k=k)["faces"]


def verify(*, data: bytes, employee: Employee) -> dict[str, Any]:
    return run("recognition.face_verify", staged=stage(data), employee_id=employee.pk)


def detect(*, data: bytes) -> list[dict[str, Any]]:
    return run("recognition.face_detect", staged=stage(data))["faces"]


def enroll_with_code(*, device_name: str, code: str, data: bytes, key: str = "") -> FaceImage:
    """A device's enrolment capture: a manager's one-time code names the employee. The code is
    used exactly once: by the photo stored with it, in the same transaction. A refused photo
    leaves the code usable for another try; a resend with the same ``key`` (the device did not
    hear the answer) returns the photo already added instead of refusing the used code."""
    entry = enrolment_code_claim(device_name=device_name, code=code, key=key)
    if entry.face_id is not None:
        return entry.face
    try:
        return enroll(employee=entry.employee, data=data, source=FaceImage.Source.DEVICE, claim=entry)
    except BaseException:
        # The answer follows what was committed: a photo stored under this claim (a worker that
        # answered after we stopped waiting) is the success; otherwise the code is freed.
        stored = enrolment_code_release(entry=entry)
        if stored is not None:
            return stored
        raise


def enrolled_answer(face: FaceImage) -> dict[str, Any]:
    """What a device is told after an enrolment capture (REST and websocket alike)."""
    return {"outcome": "enrolled", "employee_id": face.employee_id, "employee": face.employee.full_name,
            "face_id": face.pk, "message": f"Photo added for {face.employee.first_name}."}
