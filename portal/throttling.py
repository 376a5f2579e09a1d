"""Who is calling from where, and how often they may: the client address (one helper for the
API throttles, password-login lockout and face login), DRF throttles and the lockout answer.

The client address is ``REMOTE_ADDR`` unless the peer is a trusted proxy
(``ROLLCALL_TRUSTED_PROXIES``: addresses or networks). Then ``X-Forwarded-For`` is read from the
right, skipping trusted proxies; the first address that is not one is the client. A client
cannot choose its address by sending the header itself: without a trusted proxy it is ignored.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from portal.models import Device

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
log = logging.getLogger(__name__)
# What a cache backend raises when its server is unreachable (Redis in production).
CACHE_DOWN = (RedisError, ConnectionError, TimeoutError)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: HttpRequest | Any) -> str:
    """The caller's address (see the module docstring). Works for Django and DRF requests."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR") or "unknown"
    networks = _networks(tuple(settings.ROLLCALL_TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client = remote
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client  # a malformed hop: trust nothing left of it
        client = hop
        if not _trusted(hop, networks):
            return hop
    return client


# --- DRF throttles ---------------------------------------------------------------------------------

class _Throttle(SimpleRateThrottle):
    """Rates are read from ``settings.ROLLCALL_THROTTLE_RATES`` per request (None: no limit)."""

    def get_rate(self) -> str | None:
        return settings.ROLLCALL_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except CACHE_DOWN:
            # The counters live in the shared cache (Redis in production). While it is down a
            # request is served unthrottled rather than failed: the work behind it answers its
            # own clear error (e.g. 503 recognition_unavailable when the broker is the same Redis).
            log.warning("throttle %s skipped: the cache is unreachable", self.scope, exc_info=True)
            return True


def _is_device(request) -> bool:
    return isinstance(getattr(request, "auth", None), Device)


class AnonThrottle(_Throttle):
    """Callers without a login or device token, per client address."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user.is_authenticated or _is_device(request):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserThrottle(_Throttle):
    """Logged-in people (session or API token), per account."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class DeviceThrottle(_Throttle):
    """Kiosks and door units (device tokens), per device."""

    scope = "device"

    def get_cache_key(self, request, view) -> str | None:
        if not _is_device(request):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class RecognitionThrottle(_Throttle):
    """A tighter limit for the views that run 1:N or 1:1 recognition on an upload
    (``throttle_scope = "recognition"``), per account, device or address."""

    scope = "recognition"

    def get_cache_key(self, request, view) -> str | None:
        if getattr(view, "throttle_scope", None) != self.scope:
            return None
        if request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        elif _is_device(request):
            ident = f"device:{request.auth.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class BadCredentialsLimiter(_Throttle):
    """Failed API-token and device-token attempts per client address. A valid token always
    works (tokens are 160-256 random bits, too many to guess); past the limit a wrong one is
    answered 429 instead of 401 until the window passes, so guessing costs the server little."""

    scope = "bad_credentials"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refuse(self, request) -> None:
        """Count one failed attempt; raises Throttled (429, Retry-After) past the limit."""
        self.rate = self.get_rate()
        if self.rate is None:
            return
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        try:
            self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
            if len(self.history) >= self.num_requests:
                raise Throttled(wait=self.wait(), detail="Too many failed token attempts from this address.")
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)
        except CACHE_DOWN:
            log.warning("failed-token count skipped: the cache is unreachable", exc_info=True)


# --- Websockets ------------------------------------------------------------------------------------

class _SocketCaller:
    """A websocket's scope as the throttles read a request: its address (``client_ip``'s rules,
    X-Forwarded-For from a trusted proxy included) and, for a device's socket, its Device."""

    def __init__(self, scope: dict[str, Any], device: Device | None = None) -> None:
        # Repeated X-Forwarded-For lines are joined with commas, as Django's ASGI request does.
        forwarded = [value.decode("latin-1") for name, value in scope.get("headers", []) if name.lower() == b"x-forwarded-for"]
        client = scope.get("client") or ("unknown", 0)
        self.META = {"REMOTE_ADDR": client[0], "HTTP_X_FORWARDED_FOR": ",".join(forwarded)}
        self.auth = device


def socket_bad_token(scope: dict[str, Any]) -> bool:
    """Count a wrong device token offered on a websocket, as a wrong REST token is counted
    (BadCredentialsLimiter, per address); True when that address is over the limit."""
    try:
        BadCredentialsLimiter().refuse(_SocketCaller(scope))
    except Throttled:
        return True
    return False


def socket_device_allowed(scope: dict[str, Any], device: Device) -> bool:
    """A device's websocket message, counted against the same per-device rate as its REST calls
    (DeviceThrottle: one budget for every socket and request of that device)."""
    return DeviceThrottle().allow_request(_SocketCaller(scope, device), None)


# --- Password login lockout (django-axes) ------------------------------------------------------------

def login_lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                           credentials: dict | None = None) -> HttpResponse:
    """Axes' answer to a locked-out login: 429 with Retry-After; the login form (with the reason)
    for a browser, the API's error shape otherwise."""
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off is not None else None
    detail = ("Too many failed login attempts; ask an admin to unlock the account." if seconds is None else
              f"Too many failed login attempts; try again in {max(1, round(seconds / 60))} minutes.")
    if "text/html" in request.META.get("HTTP_ACCEPT", ""):
        response: HttpResponse = render(request, "registration/login.html", {"lockout": detail}, status=429)
    else:
        response = JsonResponse({"code": "too_many_attempts", "detail": detail}, status=429)
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response
