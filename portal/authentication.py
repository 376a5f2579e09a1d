"""Device tokens: ``Authorization: Device <token>``. A device is not a user: it reaches only the
endpoints whose permission is IsDevice."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from portal.models import Device
from portal.throttling import BadCredentialsLimiter


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Device"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace") != self.keyword:
            return None
        if len(header) != 2:
            BadCredentialsLimiter().refuse(request)
            raise exceptions.AuthenticationFailed("Malformed device token header.")
        device = Device.for_token(header[1].decode(errors="replace"))
        if device is None:
            BadCredentialsLimiter().refuse(request)
            raise exceptions.AuthenticationFailed("Unknown or disabled device token.")
        return AnonymousUser(), device

    def authenticate_header(self, request) -> str:
        return self.keyword


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, with failed attempts limited per client address."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            BadCredentialsLimiter().refuse(request)
            raise


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check for password logins (the login page, the Django admin).
    A call without a request (``Client.login`` in tests, management code) is not a web login:
    it is left to the next backend instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class IsDevice(permissions.BasePermission):
    message = "This endpoint is for devices (Authorization: Device <token>)."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Device)


class IsManager(permissions.BasePermission):
    message = "Managers and admins only."

    def has_permission(self, request, view) -> bool:
        from portal.permissions import is_manager

        return is_manager(request.user)


class IsAdmin(permissions.BasePermission):
    message = "Admins only."

    def has_permission(self, request, view) -> bool:
        from portal.permissions import is_admin

        return is_admin(request.user)


class IsDeviceOrManager(permissions.BasePermission):
    message = "Kiosks log in as a manager or use a device token."

    def has_permission(self, request, view) -> bool:
        return IsDevice().has_permission(request, view) or IsManager().has_permission(request, view)


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.authentication.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Device token, issued once when an admin creates the device: `Device <token>`"}


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "API token of a user: `Token <key>`"}
