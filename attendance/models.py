"""Attendance: shifts and holidays (the rules), raw recognition events, one record per employee per
day (derived from the day's events, see attendance.days), and an audit trail of manager corrections
and late events. Modelled on Frappe HRMS's shift and attendance rules."""

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
    """Start and end (local time), grace minutes, working days (0 = Monday ... 6 = Sunday).
    An end at or before the start is an overnight shift: it ends on the next calendar day."""

    name = models.CharField(max_length=120, unique=True)
    start = models.TimeField()
    end = models.TimeField()
    late_grace_minutes = models.PositiveIntegerField(default=10, help_text="Check-in later than start + this is late.")
    early_exit_grace_minutes = models.PositiveIntegerField(default=10, help_text="Check-out earlier than end - this is an early exit.")
    half_day_below_hours = models.FloatField(default=4.0, help_text="Worked time below this marks a half day.")
    absent_below_hours = models.FloatField(default=1.0, help_text="Worked time below this marks the day absent.")
    working_days = models.JSONField(default=list, help_text="Weekday numbers, Monday = 0, e.g. [0, 1, 2, 3, 4].")
    holiday_list = models.ForeignKey(HolidayList, null=True, blank=True, on_delete=models.SET_NULL, related_name="shifts")
    checkout_after_end_minutes = models.PositiveIntegerField(
        default=240, help_text="Overnight shifts: events after midnight up to the shift's end plus this many minutes "
                               "count for the day the shift started.")

    def __str__(self) -> str:
        return f"{self.name} ({self.start:%H:%M}-{self.end:%H:%M})"

    @property
    def overnight(self) -> bool:
        return self.end <= self.start


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

    def __str__(self) -> str:
        target = self.employee.full_name if self.employee_id else (self.department.name if self.department_id else "?")
        until = f" to {self.valid_to:%Y-%m-%d}" if self.valid_to else ""
        return f"{self.shift.name} → {target} from {self.valid_from:%Y-%m-%d}{until}"


class AttendanceEvent(models.Model):
    """One recognition of a known, live employee (raw: capture time, source, score are never
    edited). ``day`` is the attendance day it belongs to (overnight shifts: see attendance.days);
    ``kind`` is derived from its position in the day's capture order and recomputed whenever an
    event of that day arrives, whatever the arrival order."""

    class Kind(models.TextChoices):
        CHECK_IN = "in", "Check-in"
        CHECK_OUT = "out", "Check-out"
        REPEAT = "repeat", "Same visit (ignored)"

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="attendance_events")
    at = models.DateTimeField(db_index=True, help_text="When the face was captured.")
    day = models.DateField(help_text="The attendance day this event counts for.")
    kind = models.CharField(max_length=6, choices=Kind.choices)
    source = models.CharField(max_length=40, default="kiosk")
    score = models.FloatField(null=True, blank=True)
    needs_review = models.BooleanField(default=False, help_text="Arrived after a manager corrected the day: not applied.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the event arrived.")

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["employee", "day", "at"], name="event_employee_day")]

    def __str__(self) -> str:
        from django.utils import timezone

        at = timezone.localtime(self.at)
        return f"{self.employee.full_name} {self.get_kind_display().lower()} at {at:%Y-%m-%d %H:%M}"


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
    # Which times a manager typed: those stand; the others follow the day's events at each correction.
    first_in_typed = models.BooleanField(default=False)
    last_out_typed = models.BooleanField(default=False)
    needs_review = models.BooleanField(default=False, help_text="Events arrived after the correction; not applied.")
    settled_at = models.DateTimeField(null=True, blank=True, help_text="When the nightly job closed the day.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "employee"]
        constraints = [
            models.UniqueConstraint(fields=["employee", "date"], name="one_record_per_employee_day"),
            models.CheckConstraint(condition=models.Q(worked_seconds__gte=0), name="worked_seconds_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.employee.full_name}, {self.date:%Y-%m-%d}: {self.get_status_display()}"


class ClosedDay(models.Model):
    """A day the nightly job closed: an event arriving for it afterwards settles at once (even for
    someone it left no record for: a day off, no shift)."""

    date = models.DateField(unique=True)
    closed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} closed"


class AttendanceCorrection(models.Model):
    """Audit trail of a record: every manager change (``changed_by``) and every change a late event
    made (``source``: the device or kiosk that delivered it), with the reason and before/after values."""

    record = models.ForeignKey(AttendanceRecord, on_delete=models.CASCADE, related_name="corrections")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=40, blank=True, help_text="For a late event: where it came from.")
    reason = models.TextField()
    before = models.JSONField()
    after = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"Change of {self.record} ({self.reason[:40]})"


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
        from django.utils import timezone

        return f"{timezone.localtime(self.at):%Y-%m-%d %H:%M:%S} {self.source}: {self.outcome or self.state}"

    @property
    def outcome_label(self) -> str:
        return self.outcome.replace("_", " ")
