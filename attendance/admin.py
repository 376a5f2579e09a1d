from django.contrib import admin

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


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    list_display = ["name", "start", "end", "late_grace_minutes", "early_exit_grace_minutes", "holiday_list"]


@admin.register(ShiftAssignment)
class ShiftAssignmentAdmin(admin.ModelAdmin):
    list_display = ["shift", "employee", "department", "valid_from", "valid_to"]


class CorrectionInline(admin.TabularInline):
    model = AttendanceCorrection
    extra = 0
    can_delete = False
    readonly_fields = ["changed_by", "source", "reason", "before", "after", "at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # corrections go through attendance_correct (reason required, audited)


@admin.register(AttendanceRecord)
class AttendanceRecordAdmin(admin.ModelAdmin):
    list_display = ["date", "employee", "status", "first_in", "last_out", "worked_seconds", "late", "early_exit", "corrected",
                    "needs_review"]
    list_filter = ["status", "late", "corrected", "needs_review", "date"]
    search_fields = ["employee__full_name", "employee__code"]
    readonly_fields = [f.name for f in AttendanceRecord._meta.fields]
    inlines = [CorrectionInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AttendanceEvent)
class AttendanceEventAdmin(admin.ModelAdmin):
    """Raw recognitions: capture time, source and score; the kind is derived (attendance.days)."""

    list_display = ["at", "employee", "day", "kind", "source", "score", "created_at", "needs_review"]
    list_filter = ["kind", "needs_review", "source"]
    readonly_fields = ["employee", "at", "day", "kind", "source", "score", "needs_review", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RecognitionLog)
class RecognitionLogAdmin(admin.ModelAdmin):
    """The monitor history: read-only (devices and kiosks write it; the nightly job purges it)."""

    list_display = ["at", "source", "device", "outcome", "employee", "similarity", "liveness", "key"]
    list_filter = ["outcome", "device", "liveness"]
    search_fields = ["employee__full_name", "key"]
    exclude = ["thumbnail"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "thumbnail"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
