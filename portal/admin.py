from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from portal.models import Department, Device, Employee
from portal.permissions import may_delete, may_edit, may_use_admin_site
from portal.services import device_create, device_delete, device_rotate_token, device_update
from recognition.models import FaceImage


def _admins_only(request) -> bool:
    """The Django admin reaches every row (users, passwords, roles, every gallery): a manager who
    is also staff must not reach admins through it, so it is for RollCall admins only. A RollCall
    admin gets in whether or not their login is staff, and holds every model permission there
    (portal.backends.RollCallAdminBackend): the role decides, as on every other page."""
    return may_use_admin_site(request.user)


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form lets RollCall admins in (Django's asks for the staff flag)."""

    def confirm_login_allowed(self, user) -> None:  # type: ignore[no-untyped-def]
        if not may_use_admin_site(user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


admin.site.has_permission = _admins_only
admin.site.login_form = AdminLoginForm
admin.site.site_header = "RollCall administration"
admin.site.site_title = "RollCall admin"
admin.site.index_title = "Everything RollCall stores"
admin.site.site_url = "/manage/"


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

    def save_model(self, request, obj: Employee, form, change) -> None:  # noqa: ANN001
        if not change:
            super().save_model(request, obj, form, change)
            return
        from portal.services import employee_update

        # Through the service, so deactivating here also ends the login and leaves the galleries.
        employee_update(employee=obj)

    def delete_model(self, request, obj: Employee) -> None:
        from portal.services import employee_delete

        employee_delete(employee=obj)

    def has_change_permission(self, request, obj: Employee | None = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or may_edit(request.user, obj))

    def delete_queryset(self, request, queryset) -> None:  # noqa: ANN001
        from portal.services import employee_delete

        # "Delete selected" erases each person through the service (login, mirror), never one's own row.
        for employee in queryset:
            if may_delete(request.user, employee):
                employee_delete(employee=employee)

    def has_delete_permission(self, request, obj: Employee | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or may_delete(request.user, obj))


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["name", "location", "token_prefix", "is_active", "last_seen_at"]
    fields = ["name", "location", "is_active", "token_prefix", "last_seen_at"]
    readonly_fields = ["token_prefix", "last_seen_at"]

    actions = ["rotate_token", "deactivate"]

    def save_model(self, request, obj: Device, form, change) -> None:
        if change:
            # Through the service: deactivating closes the device's open websockets.
            device_update(device=obj, **{name: form.cleaned_data[name] for name in form.changed_data})
            return
        device, token = device_create(name=obj.name, location=obj.location)
        obj.pk = device.pk
        self.message_user(request, f"Device token (shown only now, store it on the device): {token}", level=messages.WARNING)

    def delete_model(self, request, obj: Device) -> None:
        device_delete(device=obj)

    def delete_queryset(self, request, queryset) -> None:
        for device in queryset:
            device_delete(device=device)

    @admin.action(description="Rotate the token of the selected devices (shown once)")
    def rotate_token(self, request, queryset) -> None:
        for device in queryset:
            _, token = device_rotate_token(device=device)
            self.message_user(request, f"New token for {device.name} (shown only now, store it on the device; "
                                       f"the old one no longer works): {token}", level=messages.WARNING)

    @admin.action(description="Deactivate the selected devices (their websockets close)")
    def deactivate(self, request, queryset) -> None:
        for device in queryset.filter(is_active=True):
            device_update(device=device, is_active=False)
        self.message_user(request, "Deactivated.", level=messages.SUCCESS)
