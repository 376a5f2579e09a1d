from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
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


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
