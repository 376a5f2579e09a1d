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
from portal.throttling import CACHE_DOWN, client_ip
from recognition.engine import get_liveness_checker, get_pipeline
from recognition.jobs import check_upload_size
from recognition.pipeline.errors import PipelineError
from recognition.pipeline.liveness import head_yaw
from recognition.services import (
    check_burst_bytes,
    check_burst_pixels,
    decode_frame,
    face_verify_embedded,
    liveness_challenge_redeem,
)

# The one answer for a wrong face, an unknown account, one without face login and one without a photo.
NOT_THIS_ACCOUNT = "Face login failed: the face does not match this account, or face login is not enabled for it."


def _limits(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    """(cache key, failure limit) per counter this attempt counts against."""
    return [(f"face-login:user:{username.lower()}", settings.FACE_LOGIN_MAX_FAILURES),
            (f"face-login:addr:{client_ip(request)}", settings.FACE_LOGIN_MAX_FAILURES_PER_ADDRESS)]


def _reserve(limits: list[tuple[str, int]]) -> bool:
    """Count this attempt against every counter before it runs (an atomic add + incr, so requests
    arriving together each take their own try): at most the limit of attempts run however many
    arrive at once. False, with nothing taken, when a counter has no try left."""
    taken: list[str] = []
    for key, limit in limits:
        cache.add(key, 0, settings.FACE_LOGIN_WINDOW_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # the window ran out between add and incr
            cache.add(key, 0, settings.FACE_LOGIN_WINDOW_SECONDS)
            count = cache.incr(key)
        taken.append(key)
        if count > limit:
            _give_back(taken)
            return False
    return True


def _give_back(keys: list[str]) -> None:
    for key in keys:
        try:
            cache.decr(key)
        except ValueError:  # already expired: nothing to give back
            pass


def _fail(limits: list[tuple[str, int]], message: str, status: int = 400) -> JsonResponse:
    """A failed attempt: its try was taken by _reserve and stays counted."""
    return JsonResponse({"ok": False, "detail": message}, status=status)


def _fps(value: str) -> float | None:
    try:
        fps = float(value)
    except ValueError:
        return None
    return fps if 1 <= fps <= 120 else None  # NaN fails the comparison too


@require_http_methods(["GET", "POST"])
def face_login(request: HttpRequest):
    if request.method == "GET":
        return render(request, "registration/face_login.html")
    try:
        check_burst_bytes(request.META.get("CONTENT_LENGTH"))  # before the body is read
    except PipelineError as exc:
        return JsonResponse({"ok": False, "code": exc.code, "detail": exc.detail}, status=413)
    username = request.POST.get("username", "").strip()
    frames = request.FILES.getlist("frames")
    keys = _limits(request, username)
    try:
        reserved = _reserve(keys)
    except CACHE_DOWN:  # without the counts there is no lockout: refuse clearly, the password login remains
        return JsonResponse({"ok": False, "code": "face_login_unavailable",
                             "detail": "Face login is unavailable right now; use your password."}, status=503)
    if not reserved:
        minutes = max(1, round(settings.FACE_LOGIN_WINDOW_SECONDS / 60))
        response = JsonResponse({"ok": False, "code": "too_many_attempts",
                                 "detail": f"Too many failed attempts; use your password or wait {minutes} minutes."},
                                status=429)
        response["Retry-After"] = str(settings.FACE_LOGIN_WINDOW_SECONDS)
        return response
    # Everything about the frames is judged before the account is looked up, and every account
    # question ends in the same answer (NOT_THIS_ACCOUNT, 401): no error tells which accounts exist,
    # opted in or have a photo.
    if not frames or len(frames) > 48:
        return _fail(keys, "Send between 1 and 48 camera frames.")
    fps = _fps(request.POST.get("fps", "12"))
    if fps is None:
        return _fail(keys, "fps must be a number from 1 to 120.")
    try:
        for frame in frames:
            check_upload_size(frame.size)
        data = [frame.read() for frame in frames]
        check_burst_pixels(data)
        images = [decode_frame(frame) for frame in data]
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
        elif settings.ROLLCALL_LIVENESS == "blink":
            live = get_liveness_checker().check(images, fps)
            if not live.live:
                return _fail(keys, "Liveness check failed — please blink and try again.")
        embedded = get_pipeline().embed_single(probe)
    except PipelineError as exc:
        return _fail(keys, exc.detail)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    employee = Employee.objects.filter(user=user).first() if user else None
    if employee is None or not may_face_login_as(employee):
        return _fail(keys, NOT_THIS_ACCOUNT, status=401)
    try:
        verdict = face_verify_embedded(employee=employee, probe=embedded)
    except PipelineError:  # no enrolled photo: the same answer as a face that does not match
        return _fail(keys, NOT_THIS_ACCOUNT, status=401)
    if not verdict.same:
        return _fail(keys, NOT_THIS_ACCOUNT, status=401)
    cache.delete(keys[0][0])  # the account's count starts again
    _give_back([keys[1][0]])  # the address counts failures only: this try is returned
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"ok": True, "next": resolve_url(settings.LOGIN_REDIRECT_URL)})
