"""Writes about people and devices."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from portal.models import Device, Employee


def device_create(*, name: str, location: str = "") -> tuple[Device, str]:
    """Create a device and return it with its token (the only time the token is available)."""
    token = Device.new_token()
    with transaction.atomic():
        device = Device.objects.create(
            name=name, location=location, token_hash=Device.hash_token(token), token_prefix=token[:8]
        )
    return device, token


def device_seen(*, device: Device) -> None:
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now())


def employee_delete(*, employee: Employee) -> None:
    """Erase an employee: their face photos, crops and embeddings go with them (see recognition.signals)."""
    with transaction.atomic():
        employee.delete()


def employee_update(*, employee: Employee, **fields: object) -> Employee:
    """Change an employee; deactivating one takes them out of every process's gallery index."""
    from recognition.services import gallery_changed

    with transaction.atomic():
        was_active = employee.is_active
        for name, value in fields.items():
            setattr(employee, name, value)
        employee.save()
        if employee.is_active != was_active:
            gallery_changed()
    return employee
