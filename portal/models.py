"""The people RollCall serves: departments and employees (each linked to a login)."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


class Department(models.Model):
    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Employee(models.Model):
    class Role(models.TextChoices):
        EMPLOYEE = "employee", "Employee"
        MANAGER = "manager", "Manager"
        ADMIN = "admin", "Admin"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="employee"
    )
    code = models.CharField(max_length=40, unique=True, help_text="Employee code, unique in the organisation.")
    full_name = models.CharField(max_length=200)
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="employees")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.EMPLOYEE)
    is_active = models.BooleanField(default=True)
    biometric_consent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the employee consented to biometric processing; empty = no consent."
    )
    face_login = models.BooleanField(default=False, help_text="Opted in to log in with face + liveness (password still works).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["full_name"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.code})"

    @property
    def first_name(self) -> str:
        return self.full_name.split(" ")[0]


class Device(models.Model):
    """A kiosk or an edge device. Its API token is shown once, at creation; only a hash is kept."""

    name = models.CharField(max_length=120, unique=True)
    location = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=8, editable=False, help_text="First characters, to tell tokens apart.")
    is_active = models.BooleanField(default=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the device last reported with its heartbeat: events it gave up on (refused for good or
    # failing too long), parked in its dead-letter table until someone replays them.
    dead_letters = models.PositiveIntegerField(default=0, help_text="Events in the device's dead-letter table.")
    dead_letters_recent = models.JSONField(default=list, blank=True,
                                           help_text="The latest dead letters: key, captured_at, reason.")
    dead_letters_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_token(token: str) -> str:
        # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching).
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def for_token(cls, token: str) -> Device | None:
        """The active device holding ``token``, or None."""
        return cls.objects.filter(token_hash=cls.hash_token(token), is_active=True).first()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)
