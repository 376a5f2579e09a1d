"""Writes about people and devices."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.models import Department, Device, Employee


def device_create(*, name: str, location: str = "") -> tuple[Device, str]:
    """Create a device and return it with its token (the only time the token is available)."""
    token = Device.new_token()
    with transaction.atomic():
        device = Device.objects.create(
            name=name, location=location, token_hash=Device.hash_token(token), token_prefix=token[:8]
        )
    return device, token


def device_update(*, device: Device, **fields: object) -> Device:
    """Change a device; deactivating it closes its open websockets (after commit) and its token
    stops working for REST at once."""
    from attendance.events import device_disconnect_published

    with transaction.atomic():
        # From the database: the admin's form has already set the new values on ``device``.
        was_active = Device.objects.filter(pk=device.pk, is_active=True).exists()
        for name, value in fields.items():
            setattr(device, name, value)
        device.save()
        if was_active and not device.is_active:
            device_disconnect_published(device.pk, reason="deactivated")
    return device


def device_deactivate(*, device: Device) -> Device:
    return device_update(device=device, is_active=False)


def device_delete(*, device: Device) -> None:
    from attendance.events import device_disconnect_published

    with transaction.atomic():
        device_disconnect_published(device.pk, reason="deleted")
        device.delete()


def device_rotate_token(*, device: Device) -> tuple[Device, str]:
    """Give the device a new token and return it (the only time it is available); the old token
    stops working at once and websockets opened with it are closed."""
    from attendance.events import device_disconnect_published

    token = Device.new_token()
    with transaction.atomic():
        device.token_hash = Device.hash_token(token)
        device.token_prefix = token[:8]
        device.save(update_fields=["token_hash", "token_prefix"])
        device_disconnect_published(device.pk, reason="token_rotated")
    return device, token


def device_seen(*, device: Device) -> bool:
    """Record that a device was heard from (heartbeat, websocket message, check-in); announce it
    online on the live monitor when it had been offline. Returns whether it came online."""
    from attendance.events import device_status_published

    now = timezone.now()
    quiet_since = now - dt.timedelta(seconds=settings.ROLLCALL_DEVICE_OFFLINE_SECONDS)
    came_online = not Device.objects.filter(pk=device.pk, last_seen_at__gte=quiet_since).exists()
    Device.objects.filter(pk=device.pk).update(last_seen_at=now)
    device.last_seen_at = now
    if came_online:
        device_status_published(device, online=True)
    return came_online


def device_gone(*, device: Device) -> None:
    """The device's websocket closed: show it offline now rather than after the heartbeat timeout."""
    from attendance.events import device_status_published

    device_status_published(device, online=False)


def employee_delete(*, employee: Employee) -> None:
    """Erase an employee: their face photos, crops and embeddings go with them (see recognition.signals),
    and their monitor history with its copy in the Firebase mirror."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from attendance.events import mirror_deletes_published

    with transaction.atomic():
        # The employee's row first (a check-in being written locks it, then the day's record):
        # the same order as a check-in, so the two never deadlock.
        Employee.objects.select_for_update().filter(pk=employee.pk).first()
        mirror_deletes_published(list(employee.recognitions.values_list("pk", flat=True)))
        if employee.user_id is not None:
            # Their login goes with them: no password, no API token, no session (kept inactive, not
            # deleted, so what they did keeps its author). A superuser's login is the site's
            # operator, not only this employee: it stays.
            get_user_model().objects.filter(pk=employee.user_id, is_superuser=False).update(is_active=False)
            Token.objects.filter(user_id=employee.user_id, user__is_superuser=False).delete()
        employee.delete()


class EmployeeCodeTaken(ValueError):
    """Another employee has this code (employee codes are unique in the organisation)."""


def employee_update(*, employee: Employee, **fields: object) -> Employee:
    """Change an employee; deactivating one takes them out of every process's gallery index and
    deactivates their login (password, API token, sessions), reactivating restores it. A code
    another employee has is refused with EmployeeCodeTaken (also when a concurrent change took
    it between the caller's check and this write)."""
    from django.contrib.auth import get_user_model

    from recognition.services import gallery_changed

    try:
        with transaction.atomic():
            # As stored, not as the caller's instance says: a form may already have set the new value.
            stored = Employee.objects.select_for_update().filter(pk=employee.pk).values_list("is_active", flat=True)
            was_active = stored.first() if employee.pk else employee.is_active
            for name, value in fields.items():
                setattr(employee, name, value)
            employee.save()
            if employee.user_id is not None:
                # The login follows the employee, both ways.
                get_user_model().objects.filter(pk=employee.user_id).exclude(is_active=employee.is_active).update(
                    is_active=employee.is_active)
            if employee.is_active != was_active:
                gallery_changed(employees=[employee.pk])
    except IntegrityError:
        if Employee.objects.filter(code=employee.code).exclude(pk=employee.pk).exists():
            raise EmployeeCodeTaken(f"Another employee has the code {employee.code!r}.") from None
        raise
    return employee


def device_connected(*, device: Device) -> None:
    """The device opened its websocket: it is online (announced even right after a disconnect)."""
    from attendance.events import device_status_published

    if not device_seen(device=device):
        device_status_published(device, online=True)


# --- Administration in the portal (portal/views_manage.py): people and departments ------------------

def department_create(*, name: str) -> Department:
    with transaction.atomic():
        return Department.objects.create(name=name.strip())


def department_update(*, department: Department, name: str) -> Department:
    with transaction.atomic():
        department.name = name.strip()
        department.save(update_fields=["name"])
    return department


def department_delete(*, department: Department) -> None:
    """Its employees stay, without a department; its shift assignments go with it."""
    with transaction.atomic():
        department.delete()


def employee_create(*, code: str, full_name: str, department_id: int | None = None,
                    role: str = Employee.Role.EMPLOYEE, is_active: bool = True,
                    biometric_consent_at: dt.datetime | None = None, username: str = "",
                    password: str = "") -> Employee:
    """A new employee, with a login when ``username`` is given (``password`` then sets it; without
    one the login has an unusable password until someone sets it). A code another employee has is
    refused with EmployeeCodeTaken, also when a concurrent request took it after the caller's check."""
    from django.contrib.auth import get_user_model

    if biometric_consent_at is not None and timezone.is_naive(biometric_consent_at):
        raise ValueError("biometric_consent_at must be timezone-aware")
    code = code.strip()
    try:
        with transaction.atomic():
            user = None
            if username:
                user = get_user_model().objects.create_user(username=username, password=password or None,
                                                            is_active=is_active)
            return Employee.objects.create(code=code, full_name=full_name.strip(), department_id=department_id,
                                           role=role, is_active=is_active, biometric_consent_at=biometric_consent_at,
                                           user=user)
    except IntegrityError:
        if Employee.objects.filter(code=code).exists():
            raise EmployeeCodeTaken(f"Another employee has the code {code!r}.") from None
        raise


def employee_set_password(*, employee: Employee, username: str, password: str) -> Employee:
    """Give ``employee`` a login (or a new password for the one they have)."""
    from django.contrib.auth import get_user_model

    with transaction.atomic():
        if employee.user is None:
            employee.user = get_user_model().objects.create_user(username=username, password=password,
                                                                 is_active=employee.is_active)
            employee.save(update_fields=["user"])
        else:
            employee.user.set_password(password)
            employee.user.save(update_fields=["password"])
    return employee
