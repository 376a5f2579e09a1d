from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from recognition.models import EnrolmentCode, FaceImage, LearningRun, ModelVersion, ReembedJob


@admin.register(FaceImage)
class FaceImageAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "employee", "embedder", "detection", "face_size", "source", "is_primary", "created_at"]
    list_filter = ["embedder", "source", "is_primary"]
    search_fields = ["employee__full_name", "employee__code"]
    readonly_fields = [
        "thumbnail", "employee", "content_hash", "embedder", "embedder_version", "detection_score", "box", "face_size",
        "sharpness", "source", "created_by", "created_at",
    ]
    exclude = ["embedding", "image", "crop"]

    @admin.display(description="detection score", ordering="detection_score")
    def detection(self, obj: FaceImage) -> str:
        return f"{obj.detection_score:.2f}" if obj.detection_score is not None else "—"

    @admin.display(description="face")
    def thumbnail(self, obj: FaceImage) -> str:
        if not obj.pk:
            return "-"
        return format_html('<img src="{}" width="48" height="48">', reverse("face-file", args=[obj.pk, "crop"]))

    def has_add_permission(self, request) -> bool:
        # Photos are added through the enrolment service (quality gate, embedding): see Employees.
        return False

    # Removals go through the one service (a learned photo is remembered as a negative).
    def delete_model(self, request, obj: FaceImage) -> None:  # noqa: ANN001
        from recognition.services import face_delete

        face_delete(face=obj, removed_by=request.user)

    def delete_queryset(self, request, queryset) -> None:  # noqa: ANN001
        from recognition.services import face_delete

        with transaction.atomic():
            for face in queryset:
                face_delete(face=face, removed_by=request.user)


@admin.register(ReembedJob)
class ReembedJobAdmin(admin.ModelAdmin):
    list_display = ["created_at", "embedder", "status", "progress", "failed", "heartbeat_at"]
    readonly_fields = ["embedder", "status", "total", "done", "failed", "last_error", "heartbeat_at", "created_at",
                       "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="progress (done/total)")
    def progress(self, job: ReembedJob) -> str:
        share = f" ({(job.done + job.failed) * 100 // job.total} %)" if job.total else ""
        return f"{job.done}/{job.total}{share}"


@admin.register(EnrolmentCode)
class EnrolmentCodeAdmin(admin.ModelAdmin):
    """Issued codes (the codes themselves are never stored, only a hash): who, until when, used by which device."""

    list_display = ["employee", "issued_by", "created_at", "expires_at", "used_at", "used_by_device"]
    readonly_fields = ["employee", "issued_by", "created_at", "expires_at", "used_at", "used_by_device"]
    exclude = ["code_hash"]

    def has_add_permission(self, request) -> bool:
        return False  # issued on the employee's gallery page or through the API, which shows the code once


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Learned model versions (the nightly learning); "Roll back" restores the previous one at once."""

    list_display = ["version", "state", "threshold", "parent", "created_at", "activated_at"]
    list_filter = ["state"]
    readonly_fields = ["version", "embedder", "embedder_version", "head_path", "onnx_path", "checksum", "parent",
                       "threshold", "data_counts", "losses", "metrics", "state", "reason", "created_at", "activated_at"]
    exclude = ["learned_faces"]
    actions = ["roll_back"]

    @admin.action(description="Roll back the selected active version: restore its parent")
    def roll_back(self, request, queryset) -> None:  # noqa: ANN001
        from recognition.learning import RollbackUnavailable, learning_rollback

        if [version.state for version in queryset] != [ModelVersion.State.ACTIVE]:
            self.message_user(request, "Select the active version (only it can be rolled back).", level=messages.ERROR)
            return
        try:
            restored = learning_rollback(reason=f"rolled back in the admin by {request.user.get_username()}")
        except RollbackUnavailable as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
            return
        self.message_user(request, f"Now active: {restored.version if restored else 'the base embedder alone'}.")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LearningRun)
class LearningRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "trigger", "status", "templates_added", "templates_removed", "decision"]
    readonly_fields = ["status", "trigger", "stage", "progress", "heartbeat_at", "harvest", "templates_added",
                       "templates_removed", "candidate", "decision", "details", "last_error", "created_at", "finished_at"]

    def has_add_permission(self, request) -> bool:
        return False
