from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from portal.models import Department, Device, Employee
from portal.services import device_create
from recognition.models import FaceImage


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class FaceInline(admin.TabularInline):
    """Enrolled photos of an employee: thumbnails, quality, delete (files and embedding go too)."""

    model = FaceImage
    extra = 0
    can_delete = True
    fields = ["thumbnail", "source", "is_primary", "detection_score", "face_size", "sharpness", "embedder", "created_at"]
    readonly_fields = ["thumbnail", "source", "detection_score", "face_size", "sharpness", "embedder", "created_at"]

    @admin.display(description="face")
    def thumbnail(self, obj: FaceImage) -> str:
        return format_html('<img src="{}" width="64" height="64">', reverse("face-file", args=[obj.pk, "crop"]))

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # photos are added with the "new photo" field, through the enrolment service


class EmployeeForm(forms.ModelForm):
    new_photo = forms.ImageField(required=False, help_text="Enrol another photo of this person (one face, sharp, frontal).")

    class Meta:
        model = Employee
        fields = "__all__"


@admin.register(Employee)
class EmployeeAdmin(admin.ModelAdmin):
    form = EmployeeForm
    list_display = ["full_name", "code", "department", "role", "is_active", "biometric_consent_at"]
    list_filter = ["department", "role", "is_active"]
    search_fields = ["full_name", "code", "user__username"]
    autocomplete_fields = ["department"]
    inlines = [FaceInline]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        photo = form.cleaned_data.get("new_photo")
        if photo:
            from recognition import workers
            from recognition.pipeline.errors import PipelineError

            try:
                workers.enroll(employee=form.instance, data=photo.read(), filename=photo.name, created_by=request.user)
            except PipelineError as exc:
                self.message_user(request, f"Photo not added: {exc.detail}", level=messages.ERROR)
            else:
                self.message_user(request, "Photo enrolled.", level=messages.SUCCESS)

    def delete_model(self, request, obj: Employee) -> None:
        from portal.services import employee_delete

        employee_delete(employee=obj)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["name", "location", "token_prefix", "is_active", "last_seen_at"]
    fields = ["name", "location", "is_active", "token_prefix", "last_seen_at"]
    readonly_fields = ["token_prefix", "last_seen_at"]

    def save_model(self, request, obj: Device, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        device, token = device_create(name=obj.name, location=obj.location)
        obj.pk = device.pk
        self.message_user(request, f"Device token (shown only now, store it on the device): {token}", level=messages.WARNING)
