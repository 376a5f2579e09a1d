from django.contrib import admin

from attendance.models import (
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceRecord,
    Holiday,
    HolidayList,
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
    readonly_fields = ["changed_by", "reason", "before", "after", "at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # corrections go through attendance_correct (reason required, audited)


@admin.register(AttendanceRecord)
class AttendanceRecordAdmin(admin.ModelAdmin):
    list_display = ["date", "employee", "status", "first_in", "last_out", "worked_seconds", "late", "early_exit", "corrected"]
    list_filter = ["status", "late", "corrected", "date"]
    search_fields = ["employee__full_name", "employee__code"]
    readonly_fields = [f.name for f in AttendanceRecord._meta.fields]
    inlines = [CorrectionInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AttendanceEvent)
class AttendanceEventAdmin(admin.ModelAdmin):
    list_display = ["at", "employee", "kind", "source", "score"]
    list_filter = ["kind", "source"]
    readonly_fields = ["employee", "at", "kind", "source", "score", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False
