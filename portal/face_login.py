"""Face login: username + a camera burst -> verify against that person's photos + liveness.

Opt-in per employee; the password login always remains. Failed attempts count against the
claimed account (FACE_LOGIN_MAX_FAILURES) and, with a higher limit, against the client address
(FACE_LOGIN_MAX_FAILURES_PER_ADDRESS), within FACE_LOGIN_WINDOW_SECONDS, in the cache (Redis in
production) so every web process shares the count. One person failing at a shared kiosk locks
only their own account; the address limit stops one machine trying many accounts. The address
is the real client's (portal.throttling.client_ip: proxy headers only from trusted proxies).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render, resolve_url
from django.views.decorators.http import require_http_methods

from portal.models import Employee
from portal.permissions import may_face_login_as
from portal.throttling import client_ip
from recognition.engine import get_liveness_checker
from recognition.jobs import check_upload_size
from recognition.pipeline.errors import PipelineError
from recognition.pipeline.liveness import head_yaw
from recognition.services import decode_upload, face_verify, liveness_challenge_redeem


def _limits(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    """(cache key, failure limit) per counter this attempt counts against."""
    return [(f"face-login:user:{username.lower()}", settings.FACE_LOGIN_MAX_FAILURES),
            (f"face-login:addr:{client_ip(request)}", settings.FACE_LOGIN_MAX_FAILURES_PER_ADDRESS)]


def _blocked(limits: list[tuple[str, int]]) -> bool:
    return any(cache.get(key, 0) >= limit for key, limit in limits)


def _fail(limits: list[tuple[str, int]], message: str, status: int = 400) -> JsonResponse:
    for key, _ in limits:
        cache.add(key, 0, settings.FACE_LOGIN_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, settings.FACE_LOGIN_WINDOW_SECONDS)
    return JsonResponse({"ok": False, "detail": message}, status=status)


@require_http_methods(["GET", "POST"])
def face_login(request: HttpRequest):
    if request.method == "GET":
        return render(request, "registration/face_login.html")
    username = request.POST.get("username", "").strip()
    frames = request.FILES.getlist("frames")
    keys = _limits(request, username)
    if _blocked(keys):
        minutes = max(1, round(settings.FACE_LOGIN_WINDOW_SECONDS / 60))
        response = JsonResponse({"ok": False, "code": "too_many_attempts",
                                 "detail": f"Too many failed attempts; use your password or wait {minutes} minutes."},
                                status=429)
        response["Retry-After"] = str(settings.FACE_LOGIN_WINDOW_SECONDS)
        return response
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    employee = Employee.objects.filter(user=user).first() if user else None
    if employee is None or not may_face_login_as(employee):
        return _fail(keys, "Face login is not enabled for this account.")
    if not frames or len(frames) > 48:
        return _fail(keys, "Send between 1 and 48 camera frames.")
    try:
        for frame in frames:
            check_upload_size(frame.size)
        images = [decode_upload(frame.read()) for frame in frames]
        probe = images[len(images) // 2]
        if settings.ROLLCALL_LIVENESS == "challenge":
            # The login screen always asks for the head turn: no token, no login. The face is then
            # verified on the burst's most frontal frame (a turned face matches less well).
            direction = liveness_challenge_redeem(request.POST.get("challenge", ""))
            checker = get_liveness_checker()
            points = checker.landmarks_per_frame(images)
            live = checker.turn_from_points(points, direction, frames=len(images))
            if not live.live:
                return _fail(keys, "Liveness check failed — please turn your head as asked and try again.")
            probe = images[min((i for i, p in enumerate(points) if p is not None), key=lambda i: abs(head_yaw(points[i])))]
        verdict = face_verify(image=probe, employee=employee)
        if settings.ROLLCALL_LIVENESS == "blink":
            live = get_liveness_checker().check(images, float(request.POST.get("fps", 12)))
            if not live.live:
                return _fail(keys, "Liveness check failed — please blink and try again.")
    except PipelineError as exc:
        return _fail(keys, exc.detail)
    if not verdict.same:
        return _fail(keys, "Face not recognised for this account.", status=401)
    cache.delete(keys[0][0])  # the account's count; the address keeps its own
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"ok": True, "next": resolve_url(settings.LOGIN_REDIRECT_URL)})
