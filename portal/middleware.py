"""Response headers every page carries."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Adds ``settings.ROLLCALL_CSP`` as the Content-Security-Policy of every response (a view that
    sets its own keeps it). The default allows scripts and styles only from RollCall's static
    files, so an injected ``<script>`` or inline handler does not run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.ROLLCALL_CSP
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class PrivateResponsesMiddleware:
    """A response to a signed-in caller (a session or an API token) that sets no ``Cache-Control``
    of its own gets ``private, no-store``: attendance sheets, histories and faces are not kept in a
    shared kiosk browser's cache or history for the next person to page back to, nor in a proxy's."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)  # DRF's token authentication sets it during the view
        if user is not None and user.is_authenticated and "Cache-Control" not in response:
            response["Cache-Control"] = "private, no-store"
        return response
