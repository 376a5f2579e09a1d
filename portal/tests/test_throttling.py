"""Throttling and lockout: the client address (trusted proxies only), DRF throttles per scope,
failed tokens, django-axes password lockout, face-login lockout per account plus per address."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Department, Employee
from portal.services import device_create
from portal.throttling import client_ip

RATES = {"anon": None, "user": None, "device": None, "recognition": None, "bad_credentials": None}


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


def _rates(settings, **rates: str) -> None:
    settings.ROLLCALL_THROTTLE_RATES = {**RATES, **rates}


# --- The client address ---------------------------------------------------------------------------

@pytest.mark.parametrize(("trusted", "remote", "forwarded", "expected"), [
    ([], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no trusted proxy: the header is ignored
    (["10.0.0.1"], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # the peer is not the proxy
    (["10.0.0.1"], "10.0.0.1", "198.51.100.1", "198.51.100.1"),
    (["10.0.0.1"], "10.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a forged hop left of the real one
    (["10.0.0.0/8"], "10.0.0.1", "198.51.100.1, 10.2.3.4", "198.51.100.1"),  # two proxies in a row
    (["10.0.0.1"], "10.0.0.1", "", "10.0.0.1"),
    (["10.0.0.1"], "10.0.0.1", "not-an-ip", "10.0.0.1"),
    (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
])
def test_client_ip_reads_forwarded_headers_only_from_trusted_proxies(settings, trusted, remote, forwarded,
                                                                      expected) -> None:
    settings.ROLLCALL_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


# --- DRF throttles -------------------------------------------------------------------------------------

def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "throttled" and body["detail"]
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_anonymous_calls_are_throttled_per_address(settings) -> None:
    _rates(settings, anon="3/minute")
    settings.ROLLCALL_TRUSTED_PROXIES = ["10.0.0.1"]
    client = APIClient()
    for _ in range(3):
        assert client.post("/api/v1/liveness/challenge", REMOTE_ADDR="203.0.113.9").status_code == 200
    _assert_throttled(client.post("/api/v1/liveness/challenge", REMOTE_ADDR="203.0.113.9"))
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    _assert_throttled(client.post("/api/v1/liveness/challenge", REMOTE_ADDR="203.0.113.9",
                                  HTTP_X_FORWARDED_FOR="198.51.100.77"))
    # Another address has its own count; behind the trusted proxy each client has its own too.
    assert client.post("/api/v1/liveness/challenge", REMOTE_ADDR="203.0.113.10").status_code == 200
    for _ in range(3):
        assert client.post("/api/v1/liveness/challenge", REMOTE_ADDR="10.0.0.1",
                           HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    _assert_throttled(client.post("/api/v1/liveness/challenge", REMOTE_ADDR="10.0.0.1",
                                  HTTP_X_FORWARDED_FOR="198.51.100.1"))
    assert client.post("/api/v1/liveness/challenge", REMOTE_ADDR="10.0.0.1",
                       HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200


@pytest.mark.django_db
def test_users_are_throttled_per_account(settings) -> None:
    _rates(settings, user="2/minute")
    ana, bob = (User.objects.create(username=name) for name in ("ana", "bob"))
    client = APIClient()
    client.force_login(ana)
    assert [client.get("/api/v1/employees").status_code for _ in range(2)] == [200, 200]
    _assert_throttled(client.get("/api/v1/employees"))
    # A token of the same account shares its count; another account does not.
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=ana).key}")
    _assert_throttled(token.get("/api/v1/employees"))
    other = APIClient()
    other.force_login(bob)
    assert other.get("/api/v1/employees").status_code == 200


@pytest.mark.django_db
def test_devices_are_throttled_per_device(settings) -> None:
    _rates(settings, device="2/minute")
    door, door_token = device_create(name="Door")
    _, gate_token = device_create(name="Gate")
    client, gate = APIClient(), APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {door_token}")
    gate.credentials(HTTP_AUTHORIZATION=f"Device {gate_token}")
    assert [client.post("/api/v1/device/heartbeat").status_code for _ in range(2)] == [200, 200]
    _assert_throttled(client.post("/api/v1/device/heartbeat"))
    assert gate.post("/api/v1/device/heartbeat").status_code == 200


@pytest.mark.django_db
def test_recognition_endpoints_have_their_own_tighter_scope(settings) -> None:
    _rates(settings, recognition="2/minute", user="100/minute")
    boss = User.objects.create(username="boss")
    Employee.objects.create(user=boss, code="B", full_name="Boss", role="manager",
                            department=Department.objects.create(name="Team"))
    client = APIClient()
    client.force_login(boss)
    not_an_image = io.BytesIO(b"plain text, not a photo")
    not_an_image.name = "x.jpg"
    for _ in range(2):
        not_an_image.seek(0)
        assert client.post("/api/v1/detect", {"image": not_an_image}, format="multipart").status_code == 400
    not_an_image.seek(0)
    _assert_throttled(client.post("/api/v1/recognize", {"image": not_an_image}, format="multipart"))
    # Other endpoints are under the (looser) user scope only.
    assert client.get("/api/v1/employees").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["Device", "Token"])
def test_wrong_tokens_are_limited_per_address_and_a_valid_token_still_works(settings, scheme) -> None:
    _rates(settings, bad_credentials="3/minute")
    _, device_token = device_create(name="Door")
    user_token = Token.objects.create(user=User.objects.create(username="ana")).key
    valid = device_token if scheme == "Device" else user_token
    path = "/api/v1/device/heartbeat" if scheme == "Device" else "/api/v1/employees"
    method = "post" if scheme == "Device" else "get"
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION=f"{scheme} wrong-token-guess")
    refused = {401, 403}  # DRF answers 403 when the first authenticator (the session) names no scheme
    assert all(getattr(guesser, method)(path, REMOTE_ADDR="203.0.113.9").status_code in refused for _ in range(3))
    _assert_throttled(getattr(guesser, method)(path, REMOTE_ADDR="203.0.113.9"))
    assert getattr(guesser, method)(path, REMOTE_ADDR="203.0.113.10").status_code in refused  # another address
    owner = APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"{scheme} {valid}")
    assert getattr(owner, method)(path, REMOTE_ADDR="203.0.113.9").status_code == 200


# --- Password login: django-axes ---------------------------------------------------------------------------

def _login(client: Client, username: str, password: str, address: str = "203.0.113.9", **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


@pytest.mark.django_db
def test_password_login_locks_the_account_after_repeated_failures(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    User.objects.create_user("ana", password="pw-ana-123")
    User.objects.create_user("bob", password="pw-bob-123")
    client = Client()
    for _ in range(2):
        assert _login(client, "ana", "wrong").status_code == 200  # the form again, with the error
    locked = _login(client, "ana", "wrong", address="198.51.100.5", HTTP_ACCEPT="application/json")
    assert locked.status_code == 429 and locked.json()["code"] == "too_many_attempts"
    assert int(locked["Retry-After"]) == 900
    # Locked: even the right password from another address is refused (a browser gets the form).
    page = _login(Client(), "ana", "pw-ana-123", address="198.51.100.6", HTTP_ACCEPT="text/html")
    assert page.status_code == 429 and b"Too many failed login attempts" in page.content and page["Retry-After"]
    assert "_auth_user_id" not in Client().session
    # Someone else is not affected.
    assert _login(Client(), "bob", "pw-bob-123", address="198.51.100.7").status_code == 302


@pytest.mark.django_db
def test_password_login_locks_an_address_trying_many_accounts_and_honours_trusted_proxies(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.ROLLCALL_TRUSTED_PROXIES = ["10.0.0.1"]
    User.objects.create_user("ana", password="pw-ana-123")
    sprayer = Client()
    for name in ("x1", "x2", "x3"):
        _login(sprayer, name, "guess", address="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.66")
    refused = _login(sprayer, "ana", "pw-ana-123", address="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert refused.status_code == 429
    # Ana behind the same proxy, from her own address, logs in.
    assert _login(Client(), "ana", "pw-ana-123", address="10.0.0.1",
                  HTTP_X_FORWARDED_FOR="198.51.100.20").status_code == 302


@pytest.mark.django_db
def test_the_lockout_can_be_per_username_and_address_pair(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
    User.objects.create_user("ana", password="pw-ana-123")
    for _ in range(2):
        _login(Client(), "ana", "wrong", address="203.0.113.9")
    assert _login(Client(), "ana", "pw-ana-123", address="203.0.113.9").status_code == 429
    assert _login(Client(), "ana", "pw-ana-123", address="198.51.100.1").status_code == 302


# --- Face login: per account plus per address ----------------------------------------------------------------

def _frames(path: Path, count: int = 2) -> list[io.BytesIO]:
    frames = []
    for i in range(count):
        frame = io.BytesIO(path.read_bytes())
        frame.name = f"f{i}.jpg"
        frames.append(frame)
    return frames


@pytest.mark.django_db(transaction=True)
def test_one_person_failing_face_login_locks_only_their_account_not_the_kiosk(people, settings) -> None:
    from recognition.services import face_enroll

    settings.ROLLCALL_LIVENESS = "off"
    settings.FACE_LOGIN_MAX_FAILURES = 2
    accounts = {}
    for name, person in (("ana", "joe_biden"), ("bob", "alex_lacamoire")):
        user = User.objects.create_user(name, password=f"pw-{name}-123")
        employee = Employee.objects.create(user=user, code=name, full_name=name.title(), face_login=True)
        face_enroll(employee=employee, data=people[person][0].read_bytes())
        accounts[name] = people[person][1]
    kiosk = "198.51.100.40"
    for _ in range(2):
        wrong = Client().post("/accounts/face-login/", {"username": "ana", "frames": _frames(accounts["bob"])},
                              REMOTE_ADDR=kiosk)
        assert wrong.status_code == 401
    blocked = Client().post("/accounts/face-login/", {"username": "ana", "frames": _frames(accounts["ana"])},
                            REMOTE_ADDR="203.0.113.1")
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_attempts"
    assert int(blocked["Retry-After"]) > 0
    bob = Client()
    answer = bob.post("/accounts/face-login/", {"username": "bob", "frames": _frames(accounts["bob"])}, REMOTE_ADDR=kiosk)
    assert answer.status_code == 200 and answer.json()["ok"]
    assert bob.get("/me/").status_code == 200


@pytest.mark.django_db
def test_face_login_failures_from_one_address_lock_that_address_only(settings) -> None:
    settings.FACE_LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    settings.ROLLCALL_TRUSTED_PROXIES = ["10.0.0.1"]
    for name in ("x1", "x2", "x3"):
        response = Client().post("/accounts/face-login/", {"username": name}, REMOTE_ADDR="10.0.0.1",
                                 HTTP_X_FORWARDED_FOR="198.51.100.66")
        assert response.status_code == 400
    blocked = Client().post("/accounts/face-login/", {"username": "x4"}, REMOTE_ADDR="10.0.0.1",
                            HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert blocked.status_code == 429
    # Another client behind the same proxy has its own count (it is not one shared counter).
    other = Client().post("/accounts/face-login/", {"username": "x5"}, REMOTE_ADDR="10.0.0.1",
                          HTTP_X_FORWARDED_FOR="198.51.100.67")
    assert other.status_code == 400
