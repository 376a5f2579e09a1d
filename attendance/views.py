"""The kiosk page: webcam preview with the face box, a 2 s burst, the outcome large and clear."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from portal.permissions import is_manager


@ensure_csrf_cookie
def kiosk(request: HttpRequest) -> HttpResponse:
    """Open to managers (logged in) and to device-token kiosks (the token is kept in the browser
    and sent with each burst; the page itself shows nothing private)."""
    return render(request, "attendance/kiosk.html", {"session_ok": is_manager(request.user)})
