"""The one place live-monitor events leave from.

Recognition events are sent only after the database transaction that wrote them commits (a
rolled-back check-in is never shown), and only to the Channels groups of the audiences allowed
to see them (``recognition_groups``), so each monitor receives exactly what it may see, once:

- ``monitor.admins``: admins (they join only this group, and every event is sent to it);
- ``monitor.department.<id>``: the managers of that department (its employees' events);
- ``monitor.employee.<id>``: a manager without a department (only their own events: a manager
  sees the people of their department, or only themselves without one);
- ``monitor.unknown``: every non-admin manager (unknown faces, events naming nobody);
- ``monitor.devices``: every non-admin manager (device online/offline changes);
- ``monitor.preview.<device>``: the monitors watching that device's preview frames.

With Redis as the channel layer they reach monitors on every web process. When Firebase is
configured (``attendance.firebase``) the same events are mirrored to Firestore or the Realtime
Database by the ``attendance.firebase_mirror`` task, also after commit and never on the
check-in's path: a slow or failing Firebase never delays or affects an answer.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.urls import reverse

from attendance.models import RecognitionLog
from portal.models import Device

log = logging.getLogger(__name__)

ADMINS_GROUP = "monitor.admins"
UNKNOWN_GROUP = "monitor.unknown"
DEVICES_GROUP = "monitor.devices"


def department_group(department_id: int) -> str:
    return f"monitor.department.{department_id}"


def employee_group(employee_id: int) -> str:
    return f"monitor.employee.{employee_id}"


def viewer_groups(*, admin: bool, employee_id: int | None, department_id: int | None) -> list[str]:
    """The groups a monitor socket joins (see the module docstring); the counterpart of
    ``recognition_groups`` / ``DEVICE_EVENT_GROUPS``: together they deliver each event once to
    every monitor allowed to see it (portal.permissions.visible_employees) and to no other."""
    if admin:
        return [ADMINS_GROUP]
    groups = [UNKNOWN_GROUP, DEVICES_GROUP]
    if department_id is not None:
        groups.append(department_group(department_id))
    elif employee_id is not None:
        groups.append(employee_group(employee_id))
    return groups


def recognition_groups(event: dict[str, Any]) -> list[str]:
    """The audiences of one recognition event: admins, plus the managers who see the person
    named (their department's managers; the person themselves when they are a manager without
    a department), or every manager for an event naming nobody."""
    if event.get("employee_id") is None:
        return [ADMINS_GROUP, UNKNOWN_GROUP]
    if event.get("department_id") is not None:
        return [ADMINS_GROUP, department_group(event["department_id"])]
    return [ADMINS_GROUP, employee_group(event["employee_id"])]


# Every monitor (admins and managers) sees the doors' status.
DEVICE_EVENT_GROUPS = (ADMINS_GROUP, DEVICES_GROUP)


def preview_group(device_id: int) -> str:
    return f"monitor.preview.{device_id}"


def device_group(device_id: int) -> str:
    """The websockets a device has open (its consumer joins on connect)."""
    return f"device.{device_id}"


def recognition_payload(entry: RecognitionLog) -> dict[str, Any]:
    employee = entry.employee
    return {
        "kind": "recognition",
        "id": entry.pk,
        "at": entry.at.isoformat(),
        "device_id": entry.device_id,
        "device": entry.device.name if entry.device_id else None,
        "source": entry.source,
        "outcome": entry.outcome,
        "message": entry.message,
        "employee_id": employee.pk if employee else None,
        "employee": employee.full_name if employee else None,
        "department_id": employee.department_id if employee else None,
        "similarity": entry.similarity,
        "liveness": entry.liveness or None,
        "thumbnail": reverse("monitor-thumbnail", args=[entry.pk]) if entry.thumbnail else None,
    }


def device_payload(device: Device, *, online: bool) -> dict[str, Any]:
    return {
        "kind": "device",
        "device_id": device.pk,
        "device": device.name,
        "online": online,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "dead_letters": device.dead_letters,
        "dead_letters_recent": device.dead_letters_recent,
    }


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # a monitor that misses an event must never fail the check-in behind it
        log.exception("could not send a monitor event to %s", group)


def recognition_published(entry: RecognitionLog) -> None:
    """Announce a recognition once the surrounding transaction commits (never if it rolls back)."""

    def send() -> None:
        payload = recognition_payload(entry)
        for group in recognition_groups(payload):
            event = payload
            if group == UNKNOWN_GROUP:
                # An unknown face's similarity is to the closest enrolled person, whom only admins
                # may see (portal.permissions.check_in_answer_for): managers get the event without it.
                event = {**payload, "similarity": None}
            _send(group, {"type": "monitor.event", "event": event})
        mirror_published(payload)

    transaction.on_commit(send)


def device_status_published(device: Device, *, online: bool) -> None:
    def send() -> None:
        event = device_payload(device, online=online)
        for group in DEVICE_EVENT_GROUPS:
            _send(group, {"type": "monitor.event", "event": event})

    transaction.on_commit(send)


def device_disconnect_published(device_id: int, *, reason: str) -> None:
    """Close the device's open websockets once the transaction commits (deactivated, deleted,
    token rotated); a rolled-back change closes nothing."""
    transaction.on_commit(lambda: _send(device_group(device_id), {"type": "device.disconnect", "reason": reason}))


def preview_published(device: Device, *, jpeg_base64: str, faces: list[dict[str, Any]]) -> None:
    """A low-rate annotated camera frame for monitors watching this device (not stored)."""
    _send(preview_group(device.pk), {"type": "monitor.event", "event": {
        "kind": "preview", "device_id": device.pk, "image": jpeg_base64, "faces": faces}})


def mirror_published(payload: dict[str, Any]) -> None:
    """Mirror one recognition event to Firebase (when configured), without waiting for it: the
    ``attendance.firebase_mirror`` task goes to a worker, or in the embedded default to the
    mirror's own background thread (best effort after the answer). Called after commit."""
    from attendance import firebase

    if not firebase.enabled():
        return
    document = {key: value for key, value in payload.items() if key != "thumbnail"}  # faces stay on the portal
    _send_mirror_task(upsert=document)


def mirror_deletes_published(entry_ids: list[int]) -> None:
    """Remove these monitor events from the Firebase mirror once the current transaction commits
    (the history purge, an employee's erasure); a rolled-back delete removes nothing."""
    from attendance import firebase

    ids = sorted({int(pk) for pk in entry_ids})
    if not ids or not firebase.enabled():
        return
    for start in range(0, len(ids), firebase.DELETE_BATCH):
        chunk = ids[start:start + firebase.DELETE_BATCH]
        transaction.on_commit(lambda chunk=chunk: _send_mirror_task(delete=chunk))


def _send_mirror_task(**kwargs: Any) -> None:
    from recognition.jobs import send_on_commit

    try:
        send_on_commit("attendance.firebase_mirror", **kwargs)  # outside a transaction: at once
    except Exception:  # a mirror that cannot be reached must never fail the work behind it
        log.exception("could not send the Firebase mirror task")
