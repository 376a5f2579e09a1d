"""Demo data for the embedded quick start: a manager login (role admin), a few enrolled employees,
a demo door device (its token kept in var/demo-device-token for the edge client), a department
shift (Mon-Fri 09:00-17:00) and the last working days of history: real attendance events, the
days recomputed and closed by the same services the kiosk and the nightly close use, so Today and
Month mean something on first start ("Not yet in", late, half days, absences).

Idempotent: re-running it changes nothing that is already there.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from portal.models import Department, Device, Employee
from portal.services import device_create
from recognition.models import FaceImage
from recognition.pipeline.errors import PipelineError
from recognition.services import face_enroll

DEMO_PHOTOS = Path(__file__).resolve().parents[3] / "recognition" / "fixtures" / "faces" / "people"
DEMO_USERNAME = "manager"
DEMO_PASSWORD = "rollcall-demo"
DEMO_DEVICE = "Demo door"
DEMO_SHIFT = "Office hours"
HISTORY_SOURCE = "demo"
HISTORY_DAYS = 5  # working days before today
# Per demo employee (in code order), the day's visits as (check-in, check-out) local times, cycling
# over the history days; None is a day not come in (closed as absent).
PATTERNS: list[list[tuple[str, str] | None]] = [
    [("08:52", "17:04")],
    [("09:24", "17:10"), ("08:58", "17:01")],                 # late now and then
    [("08:47", "12:30"), ("08:55", "17:20"), ("09:01", "16:58")],  # a half day
    [("08:59", "17:02"), None, ("09:05", "17:00")],           # an absence
    [("08:40", "12:02", "12:45", "17:15")],                   # a lunch break
]


class Command(BaseCommand):
    help = "Create the demo manager login and enrol demo employees from the photos the project ships."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD, help="password of the demo manager login")

    def handle(self, *args, password: str, **options) -> None:
        with transaction.atomic():
            department, _ = Department.objects.get_or_create(name="Demo team")
            user_model = get_user_model()
            user, created = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"is_staff": True})
            if created:
                user.set_password(password)
                user.save()
            Employee.objects.get_or_create(
                user=user,
                defaults={"code": "M-001", "full_name": "Demo Manager", "department": department, "role": Employee.Role.ADMIN},
            )
        enrolled = 0
        folders = sorted(p for p in DEMO_PHOTOS.iterdir() if p.is_dir())
        for number, folder in enumerate(folders, start=1):
            employee, _ = Employee.objects.get_or_create(
                code=f"E-{number:03d}",
                defaults={
                    "full_name": folder.name.replace("_", " ").title(),
                    "department": department,
                    "biometric_consent_at": timezone.now(),
                },
            )
            # The last photo of each person is kept back to try recognition with.
            for photo in sorted(folder.glob("*.jpg"))[:-1]:
                try:
                    face_enroll(employee=employee, data=photo.read_bytes(), filename=photo.name, source=FaceImage.Source.DEMO)
                    enrolled += 1
                except PipelineError as exc:
                    if exc.code == "duplicate_image":
                        continue
                    self.stderr.write(f"{photo}: {exc.detail}")
        self.stdout.write(
            f"Demo data ready: {Employee.objects.count()} employees, {FaceImage.objects.count()} faces "
            f"({enrolled} enrolled now). Login: {DEMO_USERNAME} / {password}"
        )
        self._demo_device()
        self._demo_shift_and_history(department)

    def _demo_device(self) -> None:
        """A demo door device whose token is kept in var/ (private to this machine's user) so that
        the edge client can be tried against the demo portal at once."""
        token_file = settings.VAR_DIR / "demo-device-token"
        if Device.objects.filter(name=DEMO_DEVICE).exists():
            if token_file.exists():
                self.stdout.write(f"Demo device: {DEMO_DEVICE!r}, token in {token_file}")
            return
        _, token = device_create(name=DEMO_DEVICE, location="Demo lobby")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        self.stdout.write(f"Demo device {DEMO_DEVICE!r} created; its token is in {token_file}")

    def _demo_shift_and_history(self, department: Department) -> None:
        """The demo team's shift and, on first run, its last working days of attendance."""
        from attendance.days import local_at
        from attendance.models import AttendanceEvent, Shift, ShiftAssignment
        from attendance.services import attendance_check, attendance_close_day
        from attendance.services_admin import shift_assignment_create, shift_create

        today = timezone.localdate()
        shift = Shift.objects.filter(name=DEMO_SHIFT).first()
        if shift is None:
            shift = shift_create(name=DEMO_SHIFT, start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4])
        if not ShiftAssignment.objects.filter(shift=shift, department=department).exists():
            shift_assignment_create(shift=shift, department=department, valid_from=today - dt.timedelta(days=31))
        if AttendanceEvent.objects.filter(source=HISTORY_SOURCE).exists():
            return
        days, day = [], today - dt.timedelta(days=1)
        while len(days) < HISTORY_DAYS:
            if day.weekday() in shift.working_days:
                days.append(day)
            day -= dt.timedelta(days=1)
        people = list(Employee.objects.filter(department=department, is_active=True).order_by("code"))
        days.sort()
        for index, day in enumerate(days):
            for number, employee in enumerate(people):
                pattern = PATTERNS[number % len(PATTERNS)]
                visit = pattern[index % len(pattern)]
                for clock in visit or ():
                    attendance_check(employee=employee, at=local_at(day, dt.time.fromisoformat(clock)),
                                     source=HISTORY_SOURCE)
            attendance_close_day(day=day)
        self.stdout.write(f"Demo shift {DEMO_SHIFT!r} for {department.name}; history of {len(days)} working days "
                          f"({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}), closed.")
