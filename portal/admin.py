from django.contrib import admin

from portal.models import Department, Employee


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Employee)
class EmployeeAdmin(admin.ModelAdmin):
    list_display = ["full_name", "code", "department", "role", "is_active", "biometric_consent_at"]
    list_filter = ["department", "role", "is_active"]
    search_fields = ["full_name", "code", "user__username"]
    autocomplete_fields = ["department"]
