"""Employee self-service: my attendance, my enrolled photos, a request to delete them."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from attendance.models import AttendanceRecord
from portal.permissions import employee_of
from recognition.models import ErasureRequest
from recognition.services import erasure_request_create


@login_required
def me(request: HttpRequest) -> HttpResponse:
    employee = employee_of(request.user)
    if employee is None:
        raise Http404("This login is not linked to an employee.")
    if request.method == "POST" and "face_login" in request.POST:
        employee.face_login = request.POST["face_login"] == "on"
        employee.save(update_fields=["face_login"])
        messages.success(request, "Face login is " + ("on." if employee.face_login else "off."))
        return redirect("me")
    if request.method == "POST":
        erasure_request_create(employee=employee, note=request.POST.get("note", ""))
        messages.success(request, "Your request to delete your photos was sent to your manager.")
        return redirect("me")
    since = timezone.localdate() - dt.timedelta(days=62)
    records = AttendanceRecord.objects.filter(employee=employee, date__gte=since).order_by("-date")
    return render(request, "portal/me.html", {
        "employee": employee, "records": records, "faces": employee.faces.all(),
        "worked_hours": round(sum(r.worked_seconds for r in records) / 3600, 1),
        "pending": employee.erasure_requests.filter(status=ErasureRequest.Status.PENDING).first(),
    })
