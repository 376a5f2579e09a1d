from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from recognition.models import FaceImage, ReembedJob


@admin.register(FaceImage)
class FaceImageAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "employee", "embedder", "detection_score", "face_size", "source", "is_primary", "created_at"]
    list_filter = ["embedder", "source", "is_primary"]
    search_fields = ["employee__full_name", "employee__code"]
    readonly_fields = [
        "thumbnail", "employee", "content_hash", "embedder", "embedder_version", "detection_score", "box", "face_size",
        "sharpness", "source", "created_by", "created_at",
    ]
    exclude = ["embedding", "image", "crop"]

    @admin.display(description="face")
    def thumbnail(self, obj: FaceImage) -> str:
        if not obj.pk:
            return "-"
        return format_html('<img src="{}" width="48" height="48">', reverse("face-file", args=[obj.pk, "crop"]))

    def has_add_permission(self, request) -> bool:
        # Photos are added through the enrolment service (quality gate, embedding): see Employees.
        return False


@admin.register(ReembedJob)
class ReembedJobAdmin(admin.ModelAdmin):
    list_display = ["created_at", "embedder", "status", "done", "failed", "total", "updated_at"]
    readonly_fields = ["embedder", "status", "total", "done", "failed", "last_error", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False
