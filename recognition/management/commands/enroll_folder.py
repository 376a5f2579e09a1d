"""Enrol a folder of photos: DIR/<employee code or name>/*.jpg, creating employees as needed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from portal.models import Department, Employee
from portal.services import employee_update
from recognition import workers
from recognition.models import FaceImage
from recognition.pipeline.errors import PipelineError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


class Command(BaseCommand):
    help = (
        "Enrol DIR/<employee code or name>/*.jpg. A folder matching an employee's code (or full name) "
        "adds to that employee; otherwise an employee is created with the folder name as code and name. "
        "Only people who consented to biometric processing are enrolled (--consent records it for DIR's people)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--department", help="department for employees created by this run")
        parser.add_argument("--only", type=Path, help="a text file listing the image paths (relative to DIR) to enrol")
        parser.add_argument("--quiet", action="store_true", help="no list of rejected photos at the end")
        parser.add_argument("--consent", action="store_true",
                            help="the people in DIR consented to biometric processing: record it now (photos of "
                                 "people without consent are refused)")

    def handle(self, *args, directory: Path, department: str | None, only: Path | None, quiet: bool, consent: bool,
               **options) -> None:
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory")
        dept = Department.objects.get_or_create(name=department)[0] if department else None
        if only:
            photos = [directory / line.strip() for line in only.read_text().splitlines() if line.strip()]
        else:
            photos = sorted(p for p in directory.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise CommandError(f"no photos found in {directory}/<person>/")
        if not consent:
            # Consent first, before anyone is created: a run that would refuse every photo of
            # someone stops here and names them.
            missing = sorted({photo.parent.name for photo in photos
                              if not Employee.objects.filter(Q(code=photo.parent.name) | Q(full_name=photo.parent.name),
                                                             biometric_consent_at__isnull=False).exists()})
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise CommandError(f"{len(missing)} of the people in {directory} have no recorded consent to biometric "
                                   f"processing ({shown}): record it on their page, or run with --consent if they "
                                   "all consented.")
        outcomes: Counter[str] = Counter()
        created = 0
        employees: dict[str, Employee] = {}
        refused: list[str] = []
        # One clean bar: counts ride on it, log records go through the bar's write, and the
        # rejected photos are listed after it closes (not one line per photo across the bar).
        with logging_redirect_tqdm(), tqdm(photos, desc="enrolling", unit="photo", file=self.stderr._out,
                                           dynamic_ncols=True) as bar:
            for photo in bar:
                folder = photo.parent.name
                employee = employees.get(folder)
                if employee is None:
                    employee = Employee.objects.filter(Q(code=folder) | Q(full_name=folder)).first()
                    if employee is None:
                        employee = Employee.objects.create(code=folder, full_name=folder.replace("_", " "), department=dept)
                        created += 1
                    if consent and employee.biometric_consent_at is None:
                        employee_update(employee=employee, biometric_consent_at=timezone.now())
                    employees[folder] = employee
                try:
                    workers.enroll(employee=employee, data=photo.read_bytes(), filename=photo.name,
                                   source=FaceImage.Source.UPLOAD)
                    outcomes["enrolled"] += 1
                except PipelineError as exc:
                    outcomes[exc.code] += 1
                    refused.append(f"rejected {photo}: {exc.detail}")
                bar.set_postfix(enrolled=outcomes["enrolled"], rejected=len(refused), refresh=False)
        if not quiet:
            for line in refused:
                self.stdout.write(line)
        rejected = sum(v for k, v in outcomes.items() if k != "enrolled")
        self.stdout.write(
            f"{outcomes['enrolled']} enrolled, {rejected} rejected, {created} employees created, "
            f"{len(employees)} people in {directory}"
        )
        for code, count in sorted(outcomes.items()):
            if code != "enrolled":
                self.stdout.write(f"  rejected ({code}): {count}")
