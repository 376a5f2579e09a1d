"""The one place live-monitor events leave from.

Recognition events are sent only after the database transaction that wrote them commits (a
rolled-back check-in is never shown), to the Channels group every monitor page joins; with
Redis as the channel layer they reach monitors on every web process. When Firebase is
configured (ROLLCALL_FIREBASE_CREDENTIALS) the same events are mirrored to Firestore, also
after commit, and a Firebase failure never affects a check-in.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from attendance.models import RecognitionLog
from portal.models import Device

log = logging.getLogger(__name__)

MONITOR_GROUP = "monitor"


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
        _send(MONITOR_GROUP, {"type": "monitor.event", "event": payload})
        _mirror_to_firebase(payload)

    transaction.on_commit(send)


def device_status_published(device: Device, *, online: bool) -> None:
    transaction.on_commit(lambda: _send(MONITOR_GROUP, {"type": "monitor.event", "event": device_payload(device, online=online)}))


def device_disconnect_published(device_id: int, *, reason: str) -> None:
    """Close the device's open websockets once the transaction commits (deactivated, deleted,
    token rotated); a rolled-back change closes nothing."""
    transaction.on_commit(lambda: _send(device_group(device_id), {"type": "device.disconnect", "reason": reason}))


def preview_published(device: Device, *, jpeg_base64: str, faces: list[dict[str, Any]]) -> None:
    """A low-rate annotated camera frame for monitors watching this device (not stored)."""
    _send(preview_group(device.pk), {"type": "monitor.event", "event": {
        "kind": "preview", "device_id": device.pk, "image": jpeg_base64, "faces": faces}})


_firebase_app = None


def _mirror_to_firebase(payload: dict[str, Any]) -> None:
    credentials_path = settings.ROLLCALL_FIREBASE_CREDENTIALS
    if not credentials_path:
        return
    global _firebase_app
    try:
        import firebase_admin
        from firebase_admin import credentials, firestore

        if _firebase_app is None:
            _firebase_app = firebase_admin.initialize_app(credentials.Certificate(credentials_path), name="rollcall")
        document = {key: value for key, value in payload.items() if key != "thumbnail"}  # faces stay on the portal
        firestore.client(_firebase_app).collection(settings.ROLLCALL_FIREBASE_COLLECTION).document(str(payload["id"])).set(document)
    except Exception:
        log.exception("could not mirror recognition %s to Firebase", payload.get("id"))
