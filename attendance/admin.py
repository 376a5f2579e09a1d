from django import forms
from django.contrib import admin
from django.utils import timezone

from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    Holiday,
    HolidayList,
    RecognitionLog,
    Shift,
    ShiftAssignment,
)


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 1


@admin.register(HolidayList)
class HolidayListAdmin(admin.ModelAdmin):
    inlines = [HolidayInline]


WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _clock(value) -> str:  # type: ignore[no-untyped-def]
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


def _duration(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


class ShiftAdminForm(forms.ModelForm):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        from portal.forms import TimeInput, WorkingDaysField

        super().__init__(*args, **kwargs)
        self.fields["working_days"] = WorkingDaysField(required=False, help_text="Monday to Sunday.")
        self.fields["start"].widget = TimeInput()
        self.fields["end"].widget = TimeInput()

    class Meta:
        model = Shift
        fields = "__all__"


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    form = ShiftAdminForm
    list_display = ["name", "hours", "days", "late_grace_minutes", "early_exit_grace_minutes", "holiday_list"]

    def save_model(self, request, obj: Shift, form, change) -> None:
        from attendance.services_admin import SHIFT_FIELDS, shift_create, shift_update

        values = {name: form.cleaned_data[name] for name in SHIFT_FIELDS if name in form.cleaned_data}
        if change:
            shift_update(shift=obj, **values)
        else:
            obj.pk = shift_create(**values).pk

    @admin.display(description="hours")
    def hours(self, obj: Shift) -> str:
        return f"{obj.start:%H:%M}–{obj.end:%H:%M}" + (" (overnight)" if obj.overnight else "")

    @admin.display(description="working days")
    def days(self, obj: Shift) -> str:
        return ", ".join(WEEKDAY_NAMES[day] for day in obj.working_days or [] if 0 <= day <= 6) or "none"


@admin.register(ShiftAssignment)
class ShiftAssignmentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "shift", "employee", "department", "valid_from", "valid_to"]
    list_filter = ["shift", "department"]
    list_select_related = ["shift", "employee", "department"]


class CorrectionInline(admin.TabularInline):
    model = AttendanceCorrection
    extra = 0
    can_delete = False
    readonly_fields = ["changed_by", "source", "reason", "before", "after", "at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # corrections go through attendance_correct (reason required, audited)


@admin.register(AttendanceRecord)
class AttendanceRecordAdmin(admin.ModelAdmin):
    list_display = ["date", "employee", "status", "checked_in", "checked_out", "worked", "late", "early_exit",
                    "corrected", "needs_review"]
    list_filter = ["status", "late", "corrected", "needs_review", "date"]
    search_fields = ["employee__full_name", "employee__code"]
    readonly_fields = [f.name for f in AttendanceRecord._meta.fields]
    inlines = [CorrectionInline]

    @admin.display(description="first in", ordering="first_in")
    def checked_in(self, obj: AttendanceRecord) -> str:
        return _clock(obj.first_in)

    @admin.display(description="last out", ordering="last_out")
    def checked_out(self, obj: AttendanceRecord) -> str:
        return _clock(obj.last_out)

    @admin.display(description="worked (h:mm)", ordering="worked_seconds")
    def worked(self, obj: AttendanceRecord) -> str:
        return _duration(obj.worked_seconds)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AttendanceEvent)
class AttendanceEventAdmin(admin.ModelAdmin):
    """Raw recognitions: capture time, source and score; the kind is derived (attendance.days)."""

    list_display = ["captured", "employee", "day", "kind", "source", "similarity", "created_at", "needs_review"]
    list_filter = ["kind", "needs_review", "source"]
    readonly_fields = ["employee", "at", "day", "kind", "source", "score", "needs_review", "created_at"]

    @admin.display(description="captured", ordering="at")
    def captured(self, obj: AttendanceEvent) -> str:
        return _clock(obj.at)

    @admin.display(description="score", ordering="score")
    def similarity(self, obj: AttendanceEvent) -> str:
        return f"{obj.score:.2f}" if obj.score is not None else "—"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RecognitionLog)
class RecognitionLogAdmin(admin.ModelAdmin):
    """The monitor history: read-only (devices and kiosks write it; the nightly job purges it)."""

    list_display = ["captured", "source", "device", "outcome", "employee", "score", "liveness", "key"]
    list_filter = ["outcome", "device", "liveness"]
    search_fields = ["employee__full_name", "key"]
    exclude = ["thumbnail"]

    @admin.display(description="captured", ordering="at")
    def captured(self, obj: RecognitionLog) -> str:
        return _clock(obj.at)

    @admin.display(description="similarity", ordering="similarity")
    def score(self, obj: RecognitionLog) -> str:
        return f"{obj.similarity:.2f}" if obj.similarity is not None else "—"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "thumbnail"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: RecognitionLog) -> None:
        from attendance.services import recognition_logs_delete  # its thumbnail and Firebase copy go too

        recognition_logs_delete(entries=RecognitionLog.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        from attendance.services import recognition_logs_delete

        recognition_logs_delete(entries=queryset)
