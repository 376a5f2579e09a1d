"""Writes to the face gallery, and recognition (which reads the gallery through selectors)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from PIL import Image

from portal.models import Employee
from portal.throttling import CACHE_DOWN
from recognition.engine import get_pipeline
from recognition.jobs import RecognitionUnavailable, check_upload_size, send_on_commit
from recognition.models import (
    EnrolmentCode,
    ErasureRequest,
    FaceImage,
    GalleryChange,
    GalleryState,
    LearningNegative,
    ReembedJob,
)
from recognition.pipeline.detection import Face
from recognition.pipeline.errors import ImageTooLargeError, PipelineError
from recognition.pipeline.image import MIN_SIDE, OPENERS, content_hash, format_suffix, image_format, load_image
from recognition.pipeline.matching import Match, cosine_to_distance
from recognition.pipeline.pipeline import EmbeddedFace
from recognition.quality import sharpness, yaw_ratio
from recognition.selectors import gallery_index_and_threshold

MIN_SHARPNESS = 12.0  # variance of the Laplacian of the 150 px chip; LFW's soft photos: median 40
MAX_YAW_RATIO = 0.35


class EnrolmentRejected(PipelineError):
    """The photo decodes and shows one face, but is unfit for the gallery (size, blur, pose, duplicate)."""

    code = "enrolment_rejected"


def consent_required(employee: Employee) -> None:
    """Refuse (``no_consent``) a photo of a person without a recorded biometric consent, read
    afresh from the database. Every way a photo comes in asks this (recognition.workers.enroll,
    enrolment codes); ``face_enroll`` itself is also the seeding and benchmark tool and does not."""
    if not Employee.objects.filter(pk=employee.pk, biometric_consent_at__isnull=False).exists():
        raise EnrolmentRejected(f"{employee.full_name} has not consented to biometric processing: "
                                "record their consent before enrolling a photo.", code="no_consent")


def decode_upload(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Size-checked decode of uploaded bytes into an RGB array (typed errors on bad input), at
    most ``max_pixels`` (and never over ``ROLLCALL_MAX_IMAGE_PIXELS``).

    An image with a side under the detector's minimum face size cannot hold a face it would find:
    refused as ``image_too_small`` on every endpoint."""
    check_upload_size(len(data))
    limit = settings.ROLLCALL_MAX_IMAGE_PIXELS
    if max_pixels is not None:
        limit = min(limit, max_pixels)
    return load_image(data, max_pixels=limit, min_side=max(MIN_SIDE, settings.ROLLCALL_DETECTOR_MIN_FACE))


def decode_frame(data: bytes) -> np.ndarray:
    """``decode_upload`` for one camera frame of a burst: at most ``ROLLCALL_FRAME_MAX_PIXELS``
    (a camera frame, not a poster: a burst of 50-megapixel frames would hold gigabytes)."""
    return decode_upload(data, max_pixels=settings.ROLLCALL_FRAME_MAX_PIXELS)


def check_burst_bytes(size: int | str | None) -> None:
    """Refuse a burst request whose body (``CONTENT_LENGTH``) is over ``ROLLCALL_BURST_MAX_BYTES``
    (ImageTooLargeError, 413) before it is read: 48 frames of up to the upload limit each would
    otherwise be held in memory at once."""
    try:
        size = int(size or 0)
    except ValueError:
        return  # no usable length: the parser's own limits apply
    if size > settings.ROLLCALL_BURST_MAX_BYTES:
        raise ImageTooLargeError(f"The burst is {size / 1e6:.1f} MB; the limit is "
                                 f"{settings.ROLLCALL_BURST_MAX_BYTES / 1e6:.0f} MB for all its frames together.")


def check_burst_pixels(frames: Iterable[bytes]) -> None:
    """Refuse a burst whose frames' headers announce more than ``ROLLCALL_BURST_MAX_PIXELS`` in
    all (ImageTooLargeError, 413) before any frame is decoded. Unreadable headers are left to the
    decode, which names the problem."""
    frames = list(frames)
    total = 0
    for data in frames:
        try:
            with Image.open(io.BytesIO(data), formats=OPENERS) as image:
                width, height = image.size
        except (Image.DecompressionBombError, OSError, ValueError, SyntaxError):
            continue
        total += width * height
        if total > settings.ROLLCALL_BURST_MAX_PIXELS:
            budget = settings.ROLLCALL_BURST_MAX_PIXELS
            each = budget / len(frames)
            raise ImageTooLargeError(
                f"The burst's {len(frames)} frames hold over {budget / 1e6:.0f} megapixels in all; send frames of "
                f"at most {each / 1e6:.1f} megapixels each (e.g. {_frame_example(each)}), or fewer of them.")


def _frame_example(pixels: float) -> str:
    """The largest usual 16:9 camera size within ``pixels``."""
    for width, height in ((3840, 2160), (2560, 1440), (1920, 1080), (1280, 720), (960, 540), (640, 360)):
        if width * height <= pixels:
            return f"{width}x{height}"
    return "320x180"


def stored_name(data: bytes) -> str:
    """The name a stored copy of ``data`` gets: its suffix from the decoded format, never the client's."""
    return f"{uuid.uuid4().hex}.{format_suffix(image_format(data))}"


def gallery_changed(*, employees: Iterable[int] | None = None, op: str = GalleryChange.Op.EMPLOYEE,
                    face_id: int | None = None) -> int:
    """Bump the gallery version and journal what changed, in one transaction (the caller's, if
    any), so every process refreshes its index on its next recognition: only ``employees``' rows
    (their photos are read again), or everything when ``employees`` is None (a model version
    switch, or a change not described). Returns the new version."""
    with transaction.atomic():
        updated = GalleryState.objects.filter(pk=1).update(version=F("version") + 1)
        if not updated:
            GalleryState.objects.get_or_create(pk=1, defaults={"version": 1})
        version = GalleryState.objects.filter(pk=1).values_list("version", flat=True).get()
        if employees is None:
            GalleryChange.objects.create(version=version, op=GalleryChange.Op.RELOAD)
        else:  # an empty set still journals its version (a row naming nobody), so the journal has no gaps
            GalleryChange.objects.bulk_create([GalleryChange(version=version, op=op, employee_id=employee, face_id=face_id)
                                               for employee in sorted(set(employees)) or [None]])
        keep = settings.ROLLCALL_GALLERY_JOURNAL_KEEP
        if version % 100 == 0 and version > keep:
            GalleryChange.objects.filter(version__lte=version - keep).delete()
    return version


@dataclass(frozen=True)
class EnrolmentClaim:
    """A device's hold on an enrolment code (``enrolment_code_claim``): the code's id and the
    ``used_at`` it was claimed with. The photo commits only while the hold is still this one."""

    code_id: int
    claimed_at: dt.datetime


def face_enroll(
    *,
    employee: Employee,
    data: bytes,
    filename: str = "photo.jpg",
    source: str = FaceImage.Source.UPLOAD,
    created_by: AbstractBaseUser | None = None,
    claim: EnrolmentClaim | None = None,
) -> FaceImage:
    """Detect, check and embed the one face in ``data`` and add it to ``employee``'s gallery.

    Raises a PipelineError subclass (with a user-facing message) when the photo is unusable;
    in that case nothing is stored: no row and no file. The same photo sent twice at once for
    one employee stores it once; the other gets ``duplicate_image``. With ``claim`` the
    enrolment code is marked used by this photo in the same transaction (refused if the hold
    was released meanwhile, e.g. its caller gave up waiting).
    """
    digest = content_hash(data)
    if FaceImage.objects.filter(employee=employee, content_hash=digest).exists():
        raise EnrolmentRejected("This photo is already enrolled for this person.", code="duplicate_image")
    image = decode_upload(data)
    pipeline = get_pipeline()
    embedded = pipeline.embed_single(image)
    _check_quality(embedded.face, embedded.crop)
    face = FaceImage(
        employee=employee,
        content_hash=digest,
        embedding=embedded.vector.astype(np.float32).tobytes(),
        embedder=pipeline.embedder.name,
        embedder_version=pipeline.embedder.version,
        detection_score=embedded.face.score,
        box=[round(v, 1) for v in embedded.face.box],
        face_size=embedded.face.size,
        sharpness=sharpness(embedded.crop),
        yaw=yaw_ratio(embedded.face.landmarks),
        source=source,
        created_by=created_by,
    )
    face.image.save(stored_name(data), ContentFile(data), save=False)
    try:
        face.crop.save("crop.png", ContentFile(_png(embedded.crop)), save=False)
        try:
            with transaction.atomic():
                face.is_primary = not employee.faces.exists()
                face.save()
                gallery_changed(employees=[employee.pk], op=GalleryChange.Op.ADD, face_id=face.pk)
                if claim is not None and not EnrolmentCode.objects.filter(
                        pk=claim.code_id, used_at=claim.claimed_at, face__isnull=True).update(face=face):
                    raise EnrolmentCodeRejected("The enrolment code is no longer held for this photo; please try again.")
        except IntegrityError:
            # The same photo for the same employee committed by an overlapping request.
            raise EnrolmentRejected("This photo is already enrolled for this person.", code="duplicate_image") from None
    except BaseException:
        _delete_files(face)
        raise
    return face


def face_delete(*, face: FaceImage, removed_by: AbstractBaseUser | None = None) -> None:
    """A person removes a photo (the gallery page, the API, the admin): the photo, its crop and its
    embedding go, the files once the deletion commits. A learned photo is remembered as a negative
    (recognition.learning: this capture, and any near it, is never learned again for this person)."""
    with transaction.atomic():
        if face.source == FaceImage.Source.LEARNED:
            LearningNegative.objects.create(employee_id=face.employee_id, embedding=bytes(face.embedding),
                                            embedder=face.embedder, embedder_version=face.embedder_version,
                                            created_by=removed_by)
        face.delete()  # recognition.signals removes the files on commit and bumps the gallery


def face_set_primary(*, face: FaceImage) -> None:
    """Make ``face`` the employee's primary photo (the one shown first)."""
    with transaction.atomic():
        FaceImage.objects.filter(employee_id=face.employee_id).exclude(pk=face.pk).update(is_primary=False)
        FaceImage.objects.filter(pk=face.pk).update(is_primary=True)


def _check_quality(face: Face, crop: np.ndarray) -> None:
    minimum = settings.ROLLCALL_ENROL_MIN_FACE
    if face.size < minimum:
        raise EnrolmentRejected(
            f"The face is {face.size:.0f} pixels wide; at least {minimum} are needed. Move closer or use a larger photo.",
            code="face_too_small",
        )
    if sharpness(crop) < MIN_SHARPNESS:
        raise EnrolmentRejected("The face is too blurry. Hold still and use a sharper photo.", code="too_blurry")
    if yaw_ratio(face.landmarks) > MAX_YAW_RATIO:
        raise EnrolmentRejected("The head is turned too far. Look straight at the camera.", code="extreme_pose")


def _png(crop: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG")
    return buffer.getvalue()


def _delete_files(face: FaceImage) -> None:
    for field in (face.image, face.crop):
        if field and field.name:
            field.storage.delete(field.name)


@dataclass(frozen=True)
class RecognizedFace:
    """One face in a probe image: where it is, who it most resembles and whether that counts."""

    face: Face
    best: Match | None
    known: bool
    top: tuple[Match, ...]
    threshold: float


def face_recognize(*, data: bytes | None = None, image: np.ndarray | None = None, k: int = 5) -> list[RecognizedFace]:
    """Every face in the image, matched against the current gallery (no database writes)."""
    image = decode_upload(data) if image is None else image
    embedded = get_pipeline().embed_all(image)
    index, threshold = gallery_index_and_threshold()
    results = []
    for item in embedded:
        decision = index.decide(item.vector, threshold=threshold, k=k)
        results.append(
            RecognizedFace(face=item.face, best=decision.best, known=decision.known, top=decision.top, threshold=threshold)
        )
    return results


@dataclass(frozen=True)
class Verification:
    """verify(image, identity): the probe's one face against every enrolled photo of the employee."""

    face: Face
    score: float
    distance: float
    same: bool
    threshold: float


def face_verify(*, employee: Employee, data: bytes | None = None, image: np.ndarray | None = None) -> Verification:
    """Is the one face in ``data`` this employee? (The seeds' verify(image, identity).)"""
    pipeline = get_pipeline()
    _verify_faces(employee)  # before the work: a clear "not enrolled" for an image of any quality
    probe = pipeline.embed_single(decode_upload(data) if image is None else image)
    return face_verify_embedded(employee=employee, probe=probe)


def _verify_faces(employee: Employee) -> QuerySet[FaceImage]:
    embedder = get_pipeline().embedder
    faces = employee.faces.filter(embedder=embedder.name, embedder_version=embedder.version)
    if not faces.exists():
        raise EnrolmentRejected(f"{employee.full_name} has no enrolled photo to compare with.", code="not_enrolled")
    return faces


def face_verify_embedded(*, employee: Employee, probe: EmbeddedFace) -> Verification:
    """``face_verify`` for a face already found and embedded (``FacePipeline.embed_single``): face
    login embeds the frame before it looks up the account, so no error tells which accounts exist."""
    faces = _verify_faces(employee)
    # On the gallery index's scale (its hub normalisation) when the employee is in it: one
    # threshold means the same for "who is this?" and "is this them?". Otherwise (an inactive
    # employee) the plain cosine with their photos.
    index, threshold = gallery_index_and_threshold()
    score = index.score_label(probe.vector, employee.pk)
    if score is None:
        score = float(np.max(np.stack([face.vector for face in faces]) @ probe.vector))
    return Verification(
        face=probe.face, score=score, distance=cosine_to_distance(score), same=score >= threshold, threshold=threshold
    )


def face_detect(*, data: bytes) -> list[Face]:
    """Every face in the image, best score first (no recognition, no writes)."""
    return get_pipeline().detector.detect(decode_upload(data))


def gallery_reembed_start() -> ReembedJob | None:
    """Queue a re-embedding job if any photo's vector is stale and no live job is queued or running.

    A job whose worker died (no heartbeat for ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS) is marked
    failed first, so it never blocks a new start; the new job resumes its work (re-embedding is
    idempotent). The task starts once this transaction commits, so the worker always finds the row.
    """
    embedder = get_pipeline().embedder
    with transaction.atomic():
        # One start at a time across processes: the gallery's state row is the lock.
        GalleryState.lock()
        reembed_jobs_reap()
        if not FaceImage.objects.exclude(embedder=embedder.name, embedder_version=embedder.version).exists():
            return None
        if ReembedJob.objects.filter(status__in=[ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING]).exists():
            return None
        job = ReembedJob.objects.create(embedder=embedder.key, heartbeat_at=timezone.now())
        send_on_commit("recognition.gallery_reembed", job_id=job.pk)
    return job


def reembed_jobs_reap() -> int:
    """Mark failed, visibly, every queued or running job whose heartbeat is older than
    ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS (its worker died); returns how many."""
    now = timezone.now()
    limit = dt.timedelta(seconds=settings.ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS)
    dead = 0
    for job in ReembedJob.objects.filter(status__in=[ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING]):
        beat = job.heartbeat_at or job.created_at
        if now - beat > limit:
            dead += ReembedJob.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at).update(
                status=ReembedJob.Status.FAILED, updated_at=now,
                last_error=f"The worker stopped: no heartbeat since {timezone.localtime(beat):%Y-%m-%d %H:%M:%S %Z}. "
                           "A new job resumes the work.")
    return dead


def reembed_jobs_resume() -> int:
    """Housekeeping (the nightly job): fail the jobs whose worker died and, if there were any,
    start a new one that resumes their work; returns how many were found dead."""
    with transaction.atomic():
        dead = reembed_jobs_reap()
    if dead:
        gallery_reembed_start()
    return dead


class ReembedStopped(Exception):
    """The job was marked failed (its heartbeat had stopped) while this worker still ran it."""


def _beat(job: ReembedJob, *, fields: dict[str, object]) -> None:
    """Save progress and the heartbeat, only while the job is still this worker's (running)."""
    now = timezone.now()
    if not ReembedJob.objects.filter(pk=job.pk, status=ReembedJob.Status.RUNNING).update(
            heartbeat_at=now, updated_at=now, **fields):
        raise ReembedStopped(f"re-embedding job {job.pk} was taken over")
    job.heartbeat_at = now


def gallery_reembed(*, job: ReembedJob, batch_size: int = 50) -> ReembedJob:
    """Re-embed every photo whose vector came from another embedder (or version) than the active one.

    Idempotent and resumable: it only ever picks stale rows, in batches, committing each face,
    so a crash or a second run continues where the first stopped. Progress and a heartbeat are
    kept on ``job`` after every photo; a job that was declared dead meanwhile stops here.
    """
    pipeline = get_pipeline()
    embedder = pipeline.embedder
    stale = FaceImage.objects.exclude(embedder=embedder.name, embedder_version=embedder.version)
    now = timezone.now()
    if not ReembedJob.objects.filter(pk=job.pk, status__in=[ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING]).update(
            status=ReembedJob.Status.RUNNING, embedder=embedder.key, heartbeat_at=now, updated_at=now,
            total=job.done + job.failed + stale.count()):
        job.refresh_from_db()
        return job  # failed or finished already: nothing to do
    job.refresh_from_db()
    failed_ids: list[int] = []
    try:
        while True:
            faces = list(stale.exclude(pk__in=failed_ids).order_by("pk")[:batch_size])
            if not faces:
                break
            for face in faces:
                try:
                    with face.image.open("rb") as handle:
                        image = decode_upload(handle.read())
                    faces_found = pipeline.detector.detect(image)
                    if not faces_found:
                        raise EnrolmentRejected("no face found any more", code="no_face")
                    # the stored box says which face was enrolled: take the detection nearest to it
                    chosen = min(faces_found, key=lambda f: sum((a - b) ** 2 for a, b in zip(f.box, face.box)))
                    item = pipeline.embed_all(image, [chosen])[0]
                except (PipelineError, OSError) as exc:
                    failed_ids.append(face.pk)
                    job.failed += 1
                    job.last_error = f"face {face.pk}: {exc}"
                else:
                    FaceImage.objects.filter(pk=face.pk).update(
                        embedding=item.vector.astype(np.float32).tobytes(),
                        embedder=embedder.name,
                        embedder_version=embedder.version,
                        detection_score=item.face.score,
                    )
                    job.done += 1
                _beat(job, fields={"done": job.done, "failed": job.failed, "last_error": job.last_error})
            gallery_changed(employees={face.employee_id for face in faces})
        _beat(job, fields={"status": ReembedJob.Status.FINISHED})
    except ReembedStopped:
        gallery_changed()
    job.refresh_from_db()
    return job


def erasure_request_create(*, employee: Employee, note: str = "") -> ErasureRequest:
    """An employee's request to delete their photos (one pending request at a time)."""
    with transaction.atomic():
        pending = employee.erasure_requests.filter(status=ErasureRequest.Status.PENDING).first()
        return pending or ErasureRequest.objects.create(employee=employee, note=note.strip())


def erasure_request_carry_out(*, request: ErasureRequest, handled_by: AbstractBaseUser) -> int:
    """Delete every photo, crop and embedding of the employee, and their events' copies in the
    Firebase mirror (outside this machine); returns how many photos went."""
    from django.utils import timezone

    from attendance.events import mirror_deletes_published

    with transaction.atomic():
        mirror_deletes_published(list(request.employee.recognitions.values_list("pk", flat=True)))
        faces = list(request.employee.faces.all())
        for face in faces:
            face.delete()  # recognition.signals removes the files on commit and bumps the gallery
        from recognition.learning import learning_erase

        learning_erase(employee=request.employee)  # the nightly learning's captures of them go too
        request.status = ErasureRequest.Status.DONE
        request.handled_by = handled_by
        request.handled_at = timezone.now()
        request.save()
    return len(faces)


ENROLMENT_CODE_MINUTES = 10
ENROLMENT_CODE_MAX_FAILURES = 5  # wrong codes per device within ENROLMENT_CODE_LOCKOUT_SECONDS
ENROLMENT_CODE_LOCKOUT_SECONDS = 15 * 60


class EnrolmentCodeRejected(PipelineError):
    code = "invalid_code"


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def enrolment_code_issue(*, employee: Employee, issued_by: AbstractBaseUser | None = None,
                         minutes: int = ENROLMENT_CODE_MINUTES) -> tuple[EnrolmentCode, str]:
    """A fresh 6-digit one-time code letting a device add one photo for ``employee``; returned once.
    Refused (``no_consent``) for a person without a recorded biometric consent: their photo would be."""
    consent_required(employee)
    now = timezone.now()
    while True:
        code = f"{secrets.randbelow(10**6):06d}"
        if not EnrolmentCode.objects.filter(code_hash=_code_hash(code), used_at__isnull=True, expires_at__gt=now).exists():
            break
    entry = EnrolmentCode.objects.create(employee=employee, code_hash=_code_hash(code), issued_by=issued_by,
                                         expires_at=now + dt.timedelta(minutes=minutes))
    return entry, code


def _issuer_still_may(entry: EnrolmentCode) -> bool:
    """The code's person is active and its issuer may still give them a code (portal.permissions);
    a code without an issuer came from an operator's command or script."""
    from portal.permissions import may_issue_enrolment_code

    issuer = entry.issued_by
    if not entry.employee.is_active:
        return False
    return issuer is None or (issuer.is_active and may_issue_enrolment_code(issuer, entry.employee))


def enrolment_code_claim(*, device_name: str, code: str, key: str = "") -> EnrolmentCode:
    """Take a valid code for one enrolment (wrong codes are counted per device and locked out).
    The same device resending the same request (same ``key``) gets the code it already used,
    with the photo it added (``entry.face``); while that first request is still at work the
    resend is told to try again shortly (503), never that the code is used."""
    if key:
        done = EnrolmentCode.objects.filter(code_hash=_code_hash(code), used_by_device=device_name, request_key=key,
                                            face__isnull=False).select_related("face").first()
        if done is not None:
            return done
    failures_key = "enrolment-code-failures:" + hashlib.sha256(device_name.encode()).hexdigest()[:32]
    # A try is taken before the lookup (atomic add + incr), so requests arriving together cannot
    # all pass a check made before any of them counted: at most the limit of lookups run.
    try:
        cache.add(failures_key, 0, timeout=ENROLMENT_CODE_LOCKOUT_SECONDS)
        try:
            tries = cache.incr(failures_key)
        except ValueError:  # the window ran out between add and incr
            cache.add(failures_key, 0, timeout=ENROLMENT_CODE_LOCKOUT_SECONDS)
            tries = cache.incr(failures_key)
    except CACHE_DOWN as exc:  # no count, no guessing: refuse clearly until the cache is back
        raise RecognitionUnavailable("Enrolment is unavailable right now (the shared cache is down); try again shortly.") from exc
    if tries > ENROLMENT_CODE_MAX_FAILURES:
        _give_back_try(failures_key)
        raise EnrolmentCodeRejected("Too many wrong enrolment codes from this device; wait 15 minutes.",
                                    code="too_many_attempts")
    now = timezone.now()
    entry = (EnrolmentCode.objects.filter(code_hash=_code_hash(code), used_at__isnull=True, expires_at__gt=now)
             .select_related("employee", "issued_by").first())
    if entry is not None and not _issuer_still_may(entry):
        # The person was promoted, moved or deactivated, or the issuer lost the right, since the
        # code was given: it is void (a manager cannot plant a face in an admin's gallery).
        EnrolmentCode.objects.filter(pk=entry.pk, used_at__isnull=True).update(expires_at=now)
        _give_back_try(failures_key)
        raise EnrolmentCodeRejected("This enrolment code is no longer valid: the person or the rights of the manager "
                                    "who gave it changed since. Ask for a new code.")
    # The conditional update is the claim: of requests racing with one code, exactly one wins.
    if entry is not None and EnrolmentCode.objects.filter(pk=entry.pk, used_at__isnull=True).update(
            used_at=now, used_by_device=device_name, request_key=key):
        entry.used_at, entry.used_by_device, entry.request_key = now, device_name, key
        _give_back_try(failures_key)
        return entry
    # Only a code that never existed keeps its try: losing a race for a real code (or sending one
    # already used) reveals nothing a guesser could use.
    if EnrolmentCode.objects.filter(code_hash=_code_hash(code)).exists():
        _give_back_try(failures_key)
    if key and EnrolmentCode.objects.filter(code_hash=_code_hash(code), used_by_device=device_name, request_key=key,
                                            face__isnull=True, used_at__isnull=False).exists():
        raise RecognitionUnavailable("This enrolment is still being processed; try again shortly.")
    raise EnrolmentCodeRejected("The enrolment code is wrong, used or expired; ask a manager for a new one.")


def _give_back_try(failures_key: str) -> None:
    try:
        cache.decr(failures_key)
    except ValueError:  # the window ran out: nothing to give back
        pass


def enrolment_code_release(*, entry: EnrolmentCode) -> FaceImage | None:
    """The enrolment did not go through: the code may be used again (until it expires) for a
    better photo. If a photo was stored under this claim after all (a worker that answered after
    its caller stopped waiting), the code stays used and that photo is returned."""
    released = EnrolmentCode.objects.filter(pk=entry.pk, used_at=entry.used_at, face__isnull=True).update(
        used_at=None, used_by_device="", request_key="")
    if released:
        return None
    return FaceImage.objects.filter(pk__in=EnrolmentCode.objects.filter(pk=entry.pk, used_at=entry.used_at)
                                    .values("face_id")).first()


CHALLENGE_SALT = "rollcall.liveness-challenge"
CHALLENGE_PROMPTS = {"left": "Turn your head to your left", "right": "Turn your head to your right"}


class ChallengeRejected(PipelineError):
    code = "challenge_invalid"


def liveness_challenge_issue() -> tuple[str, str]:
    """A random head-turn challenge for a screen to show: (signed one-time token, direction)."""
    direction = secrets.choice(("left", "right"))
    return signing.dumps({"d": direction, "n": secrets.token_hex(8)}, salt=CHALLENGE_SALT), direction


def liveness_challenge_redeem(token: str) -> str:
    """The direction a challenge asked for; each token is good once, within ROLLCALL_CHALLENGE_SECONDS."""
    try:
        value = signing.loads(token, salt=CHALLENGE_SALT, max_age=settings.ROLLCALL_CHALLENGE_SECONDS)
    except signing.SignatureExpired:
        raise ChallengeRejected("The head-turn challenge expired; please try again.") from None
    except signing.BadSignature:
        raise ChallengeRejected("Not a challenge this portal issued.") from None
    if not cache.add(f"challenge-used:{value['n']}", 1, timeout=settings.ROLLCALL_CHALLENGE_SECONDS * 2):
        raise ChallengeRejected("This challenge was already used; please try again.")
    return value["d"]
