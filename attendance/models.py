"""Attendance: shifts and holidays (the rules), raw check events, one record per employee per day,
and an audit trail of manager corrections. Modelled on Frappe HRMS's shift and attendance rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.models import Department, Device, Employee


class HolidayList(models.Model):
    name = models.CharField(max_length=120, unique=True)

    def __str__(self) -> str:
        return self.name


class Holiday(models.Model):
    holiday_list = models.ForeignKey(HolidayList, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["holiday_list", "date"], name="holiday_once_per_list")]

    def __str__(self) -> str:
        return f"{self.date}: {self.name}"


class Shift(models.Model):
    """Start and end (local time), grace minutes, working days (0 = Monday ... 6 = Sunday)."""

    name = models.CharField(max_length=120, unique=True)
    start = models.TimeField()
    end = models.TimeField()
    late_grace_minutes = models.PositiveIntegerField(default=10, help_text="Check-in later than start + this is late.")
    early_exit_grace_minutes = models.PositiveIntegerField(default=10, help_text="Check-out earlier than end - this is an early exit.")
    half_day_below_hours = models.FloatField(default=4.0, help_text="Worked time below this marks a half day.")
    absent_below_hours = models.FloatField(default=1.0, help_text="Worked time below this marks the day absent.")
    working_days = models.JSONField(default=list, help_text="Weekday numbers, Monday = 0, e.g. [0, 1, 2, 3, 4].")
    holiday_list = models.ForeignKey(HolidayList, null=True, blank=True, on_delete=models.SET_NULL, related_name="shifts")

    def __str__(self) -> str:
        return f"{self.name} ({self.start:%H:%M}-{self.end:%H:%M})"


class ShiftAssignment(models.Model):
    """A shift for one employee or a whole department from a date (an employee's own assignment wins)."""

    shift = models.ForeignKey(Shift, on_delete=models.CASCADE, related_name="assignments")
    employee = models.ForeignKey(Employee, null=True, blank=True, on_delete=models.CASCADE, related_name="shift_assignments")
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.CASCADE, related_name="shift_assignments")
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(employee__isnull=False) | models.Q(department__isnull=False),
                name="assignment_has_a_target",
            )
        ]


class AttendanceEvent(models.Model):
    """One accepted recognition that counted as a check-in or check-out (raw, never edited)."""

    class Kind(models.TextChoices):
        CHECK_IN = "in", "Check-in"
        CHECK_OUT = "out", "Check-out"

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="attendance_events")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=3, choices=Kind.choices)
    source = models.CharField(max_length=40, default="kiosk")
    score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at"]


class AttendanceRecord(models.Model):
    class Status(models.TextChoices):
        PRESENT = "present", "Present"
        LATE = "late", "Late"
        HALF_DAY = "half_day", "Half day"
        ABSENT = "absent", "Absent"
        ON_LEAVE = "on_leave", "On leave"
        HOLIDAY = "holiday", "Holiday"
        OPEN = "open", "In progress"

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="attendance_records")
    date = models.DateField(db_index=True)
    first_in = models.DateTimeField(null=True, blank=True)
    last_out = models.DateTimeField(null=True, blank=True)
    worked_seconds = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    late = models.BooleanField(default=False)
    early_exit = models.BooleanField(default=False)
    missing_checkout = models.BooleanField(default=False)
    corrected = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "employee"]
        constraints = [models.UniqueConstraint(fields=["employee", "date"], name="one_record_per_employee_day")]

    def __str__(self) -> str:
        return f"{self.employee} {self.date}: {self.status}"


class AttendanceCorrection(models.Model):
    """Audit trail: every manager change to a record, with the reason and before/after values."""

    record = models.ForeignKey(AttendanceRecord, on_delete=models.CASCADE, related_name="corrections")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()
    before = models.JSONField()
    after = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at"]


class RecognitionLog(models.Model):
    """Every kiosk or device check-in attempt and the answer it got: the live monitor's history and
    the store behind device idempotency keys (one row per device and key, answered once)."""

    class State(models.TextChoices):
        PENDING = "pending", "Being processed"
        DONE = "done", "Answered"

    at = models.DateTimeField(db_index=True, help_text="When the face was captured (a device may deliver later).")
    received_at = models.DateTimeField(auto_now_add=True)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="recognitions")
    key = models.CharField(max_length=64, null=True, blank=True, help_text="The device's idempotency key.")
    source = models.CharField(max_length=40, default="kiosk")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    outcome = models.CharField(max_length=20, blank=True)
    message = models.CharField(max_length=200, blank=True)
    # Erasing an employee erases their monitor history and its face thumbnails with them.
    employee = models.ForeignKey(Employee, null=True, blank=True, on_delete=models.CASCADE, related_name="recognitions")
    similarity = models.FloatField(null=True, blank=True)
    liveness = models.CharField(max_length=20, blank=True)
    thumbnail = models.ImageField(upload_to="monitor/%Y/%m/", blank=True)
    answer = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["device", "key"], condition=models.Q(key__isnull=False), name="one_answer_per_device_key")
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.source}: {self.outcome or self.state}"

    @property
    def outcome_label(self) -> str:
        return self.outcome.replace("_", " ")
