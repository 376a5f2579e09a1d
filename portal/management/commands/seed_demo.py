"""Demo data for the embedded quick start: a manager login, a few enrolled employees and a demo
door device (its token kept in var/demo-device-token for the edge client).

Idempotent: re-running it changes nothing that is already there.
"""

from __future__ import annotations

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
