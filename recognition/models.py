"""The face gallery: enrolled photos with their aligned crops and embeddings."""

from __future__ import annotations

import uuid

import numpy as np
from django.conf import settings
from django.db import models

from portal.models import Employee


def _face_path(instance: FaceImage, filename: str) -> str:
    return f"faces/{instance.employee_id}/{uuid.uuid4().hex}{_suffix(filename)}"


def _crop_path(instance: FaceImage, filename: str) -> str:
    return f"faces/{instance.employee_id}/crops/{uuid.uuid4().hex}.png"


def _suffix(filename: str) -> str:
    return "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ".jpg"


class FaceImage(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        WEBCAM = "webcam", "Webcam"
        CHECK_IN = "check_in", "Check-in"
        DEVICE = "device", "Device"
        DEMO = "demo", "Demo data"
        LEARNED = "learned", "Learned"

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="faces")
    image = models.FileField(upload_to=_face_path)
    crop = models.FileField(upload_to=_crop_path)
    content_hash = models.CharField(max_length=64, db_index=True)
    embedding = models.BinaryField()
    embedder = models.CharField(max_length=40)
    embedder_version = models.CharField(max_length=500)
    detection_score = models.FloatField()
    box = models.JSONField(help_text="[x1, y1, x2, y2] in pixels of the upright original.")
    face_size = models.FloatField(help_text="Shorter side of the face box in pixels.")
    sharpness = models.FloatField(help_text="Variance of the Laplacian of the aligned crop.")
    yaw = models.FloatField(default=0.0, help_text="Head turn: nose offset from the eyes' midline, in eye distances.")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOAD)
    is_primary = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["employee", "-is_primary", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["employee", "content_hash"], name="face_unique_image_per_employee"),
        ]

    def __str__(self) -> str:
        return f"face {self.pk} of {self.employee}"

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)


def _new_epoch() -> str:
    return uuid.uuid4().hex


class GalleryState(models.Model):
    """One row: the gallery's version, bumped on every change so each process knows when its
    in-memory index is stale without reading the embeddings."""

    version = models.BigIntegerField(default=0)
    # Identifies this row's lifetime: a recreated gallery (a new database) starts a new epoch,
    # so a process never mistakes a fresh version 1 for the version 1 it already loaded.
    epoch = models.CharField(max_length=32, default=_new_epoch)

    @classmethod
    def lock(cls) -> None:
        """Lock the one row (created if absent) until the caller's transaction ends: the lock that
        serialises gallery-wide steps across processes (a re-embedding start, a learning run's
        claim, a model switch, a rollback). Taken first, so these steps lock in one order."""
        cls.objects.select_for_update().get_or_create(pk=1)


class GalleryChange(models.Model):
    """The gallery's change journal: which employees' photos changed at which gallery version,
    written in the transaction that bumps GalleryState. A process whose index is at version v
    refreshes only the employees named after v (recognition.selectors.gallery_index); a RELOAD row
    (a model version switch, or a change nobody described) makes every process rebuild. Rows older
    than ROLLCALL_GALLERY_JOURNAL_KEEP versions are pruned: a process further behind rebuilds."""

    class Op(models.TextChoices):
        ADD = "add", "Photo added"
        REMOVE = "remove", "Photo removed"
        EMPLOYEE = "employee", "Employee changed"
        RELOAD = "reload", "Reload everything"

    version = models.BigIntegerField(db_index=True)
    op = models.CharField(max_length=10, choices=Op.choices)
    employee_id = models.BigIntegerField(null=True, blank=True)  # no foreign key: the employee may be gone
    face_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "pk"]


class ReembedJob(models.Model):
    """Progress of re-embedding the gallery with a new embedder (shown in the admin).

    A running job beats ``heartbeat_at`` after every photo; a queued or running job whose
    heartbeat is older than ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS lost its worker: it is marked
    failed (with the reason in ``last_error``) and a new job resumes the work.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed (worker lost)"

    embedder = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the job's worker.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"re-embed to {self.embedder or '?'}: {self.done}/{self.total} ({self.status})"


class ErasureRequest(models.Model):
    """An employee asks for their enrolled photos to be deleted; a manager or admin carries it out."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="erasure_requests")
    note = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(auto_now_add=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]


class EnrolmentCode(models.Model):
    """A one-time code a manager issues so that a device at the door may add one photo to one
    employee's gallery (the edge client's enrolment capture). Only a hash of the code is kept."""

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="enrolment_codes")
    code_hash = models.CharField(max_length=64, db_index=True, editable=False)
    # None: issued by an operator's script or command; a deleted issuer's codes go with them.
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by_device = models.CharField(max_length=120, blank=True)
    request_key = models.CharField(max_length=64, blank=True, help_text="The device's idempotency key for the enrolment.")
    face = models.ForeignKey(FaceImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        from django.utils import timezone

        return f"enrolment code for {self.employee} (until {timezone.localtime(self.expires_at):%H:%M})"


# --- Nightly learning (recognition/learning*.py) -------------------------------------------------------

def _candidate_path(instance: LearningCandidate, filename: str) -> str:
    return f"learning/{instance.employee_id}/{uuid.uuid4().hex}.png"


def _vectors(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype=np.float32).reshape(-1, dim)


class LearningCandidate(models.Model):
    """The views of one accepted, live, safely recognised check-in (no label from anyone: the
    system's own decision). ``vectors`` are the base embedder's unit vectors of the burst's views
    (float32, views x dim); ``crop`` is the aligned crop of the middle view. Kept
    ROLLCALL_LEARN_KEEP_DAYS; the nightly job picks templates and held-out probes from them."""

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="learning_candidates")
    captured_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=40, blank=True)
    device = models.ForeignKey("portal.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    log_id = models.BigIntegerField(null=True, blank=True, help_text="The RecognitionLog of the check-in.")
    vectors = models.BinaryField()
    views = models.PositiveSmallIntegerField()
    dim = models.PositiveIntegerField()
    embedder = models.CharField(max_length=40)
    embedder_version = models.CharField(max_length=500)
    crop = models.FileField(upload_to=_candidate_path)
    score = models.FloatField(help_text="Mean score of the recognised person over the views.")
    gap = models.FloatField(help_text="Score above the second person.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-captured_at"]

    @property
    def matrix(self) -> np.ndarray:
        return _vectors(self.vectors, self.dim)


class LearningNegative(models.Model):
    """A learned photo a manager removed: this vector (and any close to it) is never learned
    again for this employee."""

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="learning_negatives")
    embedding = models.BinaryField()
    embedder = models.CharField(max_length=40)
    embedder_version = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)


class StrangerSample(models.Model):
    """The views of a check-in answered "unknown" (no identity, no image): the gate's strangers.
    Capped at ROLLCALL_LEARN_STRANGERS_KEPT (the oldest go first)."""

    vectors = models.BinaryField()
    views = models.PositiveSmallIntegerField()
    dim = models.PositiveIntegerField()
    embedder = models.CharField(max_length=40)
    embedder_version = models.CharField(max_length=500)
    captured_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-captured_at"]

    @property
    def matrix(self) -> np.ndarray:
        return _vectors(self.vectors, self.dim)


class ModelVersion(models.Model):
    """A recognition model: the base embedder, an optional projection head over its vectors, and
    the learned templates in the gallery. Exactly one is active; recognition uses the active one's
    head, learned photos and threshold (gallery_index)."""

    class State(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected"
        RETIRED = "retired", "Retired"

    version = models.CharField(max_length=600)
    embedder = models.CharField(max_length=40)
    embedder_version = models.CharField(max_length=500)
    head_path = models.CharField(max_length=500, blank=True, help_text="Projection head weights (empty: none).")
    onnx_path = models.CharField(max_length=500, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the head's weights.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    learned_faces = models.ManyToManyField(FaceImage, blank=True, related_name="model_versions")
    threshold = models.FloatField(null=True, blank=True, help_text="Re-calibrated for this model and gallery.")
    data_counts = models.JSONField(default=dict)
    losses = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CANDIDATE, db_index=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["state"], condition=models.Q(state="active"),
                                               name="one_active_model_version")]

    def __str__(self) -> str:
        return f"{self.version} ({self.state})"


class LearningRun(models.Model):
    """One night's learning (or an admin's "Run now"): what was harvested, what changed, the gate's
    figures and decision. A running job beats ``heartbeat_at`` (as ReembedJob)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=20, default="schedule")
    stage = models.CharField(max_length=80, blank=True)
    progress = models.FloatField(default=0.0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    harvest = models.JSONField(default=dict)
    templates_added = models.PositiveIntegerField(default=0)
    templates_removed = models.PositiveIntegerField(default=0)
    candidate = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    decision = models.CharField(max_length=40, blank=True)
    details = models.JSONField(default=dict, help_text="Gate figures, timings, fine-tuning rows.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
