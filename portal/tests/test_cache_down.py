"""A dead shared cache (Redis in production) never turns into a 500: throttles step aside (logged),
face login and device enrolment refuse clearly (without their attempt counts there is no lockout).
The cache here is a real Redis client pointed at a closed loopback port."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Device, Employee
from portal.services import device_create

pytestmark = pytest.mark.django_db


@pytest.fixture()
def dead_cache(settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    yield


def test_api_calls_are_served_while_the_throttle_counters_are_unreachable(dead_cache) -> None:
    user = User.objects.create_user("boss", password="pw-cache-down-1")
    Employee.objects.create(user=user, code="A-1", full_name="Boss", role=Employee.Role.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = client.get("/api/v1/employees")
    assert response.status_code == 200, response.content


def test_face_login_refuses_clearly_while_the_cache_is_down(dead_cache, client) -> None:
    response = client.post("/accounts/face-login/", {"username": "anyone", "fps": "12"})
    assert response.status_code == 503
    assert response.json()["code"] == "face_login_unavailable"


def test_device_enrolment_refuses_clearly_while_the_cache_is_down(dead_cache, people) -> None:
    device, token = device_create(name="Door")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    with open(people["joe_biden"][0], "rb") as photo:
        response = client.post("/api/v1/device/enrol", {"code": "123456", "photo": photo}, format="multipart")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "recognition_unavailable"
    assert Device.objects.filter(pk=device.pk).exists()
