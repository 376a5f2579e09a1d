from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from portal.permissions import employee_of, is_manager, visible_employees


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Managers see their people and gallery; employees see their own enrolled photos."""
    employees = (
        visible_employees(request.user)
        .select_related("department")
        .prefetch_related("faces")
        .annotate(face_count=Count("faces"))
    )
    return render(
        request,
        "portal/home.html",
        {"employees": employees, "me": employee_of(request.user), "manager": is_manager(request.user)},
    )


def health(request: HttpRequest) -> JsonResponse:
    """Whether the portal really serves: the database answers and so does recognition (recent
    calls of this process did not keep failing; with a broker a worker answers a ping).
    200 {"status": "ok"} or 503 {"status": "degraded"}, with each check. Cheap enough to poll."""
    from recognition.jobs import recognition_check

    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except DatabaseError as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    checks["recognition"] = recognition_check()
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)
