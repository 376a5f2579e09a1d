"""Attendance pages: the kiosk, the today board, the monthly sheet with charts, CSV/XLSX export."""

from __future__ import annotations

import calendar
import datetime as dt
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.csrf import ensure_csrf_cookie

from attendance.charts import late_chart, rate_chart
from attendance.exports import sheet_csv, sheet_xlsx
from attendance.models import AttendanceRecord, RecognitionLog
from attendance.selectors import (
    MAX_PERIOD_DAYS,
    TOTAL_LABELS,
    TOTAL_LETTERS,
    device_statuses,
    month_sheet,
    period_sheet,
    recognitions_for,
    today_board,
)
from attendance.services import attendance_correct, correction_time
from portal.api import MAX_ID
from portal.http import image_response
from portal.models import Department
from portal.permissions import is_manager, may_correct_attendance, may_view_cameras, may_view_reports, visible_employees


@ensure_csrf_cookie
def kiosk(request: HttpRequest) -> HttpResponse:
    """Open to managers (logged in) and to device-token kiosks (the token is kept in the browser
    and sent with each burst; the page itself shows nothing private)."""
    return render(request, "attendance/kiosk.html", {"session_ok": is_manager(request.user)})


def _manager_only(request: HttpRequest) -> None:
    if not may_view_reports(request.user):
        raise Http404


def _query_id(request: HttpRequest, name: str) -> int | None:
    """An optional id in the query string; anything but a database id is a 400, never a 500."""
    value = request.GET.get(name, "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and 0 < int(value) <= MAX_ID):
        raise BadRequest(f"{name} must be an id.")
    return int(value)


def _filters(request: HttpRequest) -> dict[str, int | None]:
    return {"department_id": _query_id(request, "department")}


@login_required
def today(request: HttpRequest) -> HttpResponse:
    _manager_only(request)
    filters = _filters(request)
    return render(request, "attendance/today.html", {
        "board": today_board(request.user, **filters), "departments": Department.objects.all(), **filters})


def _month(request: HttpRequest) -> tuple[int, int]:
    now = timezone.localdate()
    try:
        year, number = (int(x) for x in request.GET.get("month", f"{now.year}-{now.month}").split("-"))
        dt.date(year, number, 1)
    except ValueError:
        year, number = now.year, now.month
    return year, number


@login_required
def month(request: HttpRequest) -> HttpResponse:
    _manager_only(request)
    year, number = _month(request)
    filters = _filters(request)
    sheet = month_sheet(request.user, year=year, month=number, **filters)
    back, ahead = divmod(year * 12 + number - 2, 12), divmod(year * 12 + number, 12)
    previous = f"{back[0]:04d}-{back[1] + 1:02d}" if back[0] >= 1 else ""
    following = f"{ahead[0]:04d}-{ahead[1] + 1:02d}" if ahead[0] <= 9999 else ""
    return render(request, "attendance/month.html", {
        "sheet": sheet, "rate_chart": rate_chart(sheet), "late_chart": late_chart(sheet),
        "month_value": f"{year}-{number:02d}", "previous_month": previous, "next_month": following,
        "totals": [(letter, TOTAL_LABELS[letter], sheet.totals[letter]) for letter in TOTAL_LETTERS],
        "departments": Department.objects.all(), **filters})


@login_required
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The sheet as on the month page (every person in scope, every day, totals) as CSV or XLSX;
    ``?month=YYYY-MM`` (default: this month) or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``, ``?department=``."""
    _manager_only(request)
    if fmt not in ("csv", "xlsx"):
        raise Http404
    if "from" in request.GET or "to" in request.GET:
        today_date = timezone.localdate()
        try:
            start = dt.date.fromisoformat(request.GET.get("from", today_date.replace(day=1).isoformat()))
            end = dt.date.fromisoformat(request.GET.get("to", today_date.isoformat()))
        except ValueError:
            return HttpResponse("Dates must be YYYY-MM-DD.", status=400, content_type="text/plain")
        if end < start or (end - start).days > MAX_PERIOD_DAYS:
            return HttpResponse("The period must run forward and be at most a year.", status=400, content_type="text/plain")
    else:
        year, number = _month(request)
        start = dt.date(year, number, 1)
        end = dt.date(year, number, calendar.monthrange(year, number)[1])
    filters = _filters(request)
    department = Department.objects.filter(pk=filters["department_id"]).first() if filters["department_id"] else None
    sheet = period_sheet(request.user, start=start, end=end, **filters)
    name = f"attendance_{start}_{end}{'_' + slugify(department.name) if department else ''}.{fmt}"
    if fmt == "xlsx":
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        response = HttpResponse(sheet_xlsx(sheet, department=department), content_type=content_type)
    else:
        response = HttpResponse(sheet_csv(sheet), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def employee_history(request: HttpRequest, pk: int) -> HttpResponse:
    """A manager's view of one employee's attendance, with totals and a correction link per day."""
    _manager_only(request)
    employee = get_object_or_404(visible_employees(request.user), pk=pk)
    today_date = timezone.localdate()
    try:
        start = dt.date.fromisoformat(request.GET.get("from", (today_date - dt.timedelta(days=62)).isoformat()))
        end = dt.date.fromisoformat(request.GET.get("to", today_date.isoformat()))
    except ValueError:
        start, end = today_date - dt.timedelta(days=62), today_date
    records = AttendanceRecord.objects.filter(employee=employee, date__gte=start, date__lte=end).order_by("-date")
    totals = {label: sum(r.status == value for r in records) for value, label in AttendanceRecord.Status.choices}
    return render(request, "attendance/history.html", {
        "employee": employee, "records": records, "start": start, "end": end, "totals": totals,
        "late": sum(r.late for r in records), "worked_seconds": sum(r.worked_seconds for r in records),
        "may_correct": may_correct_attendance(request.user, employee)})


@login_required
def correct(request: HttpRequest, record_pk: int) -> HttpResponse:
    """Correct one record: a reason is required; the change joins the record's audit trail."""
    _manager_only(request)
    record = get_object_or_404(AttendanceRecord, pk=record_pk, employee__in=visible_employees(request.user))
    if not may_correct_attendance(request.user, record.employee):
        raise PermissionDenied  # managers correct their department's employees, not peers, admins or themselves
    error = ""
    if request.method == "POST":
        def at(field: str) -> dt.datetime | None:
            value = request.POST.get(field, "").strip()
            if not value:
                return None
            # A clock time in the site's zone, as the form's time input sends it: "T10" or an
            # offset ("10:00+05:00", silently dropped before) is refused.
            if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?", value):
                raise ValueError(f"{field.replace('_', ' ').capitalize()} must be a time like 09:05.")
            return correction_time(record, dt.time.fromisoformat(value))

        try:
            attendance_correct(record=record, changed_by=request.user, reason=request.POST.get("reason", ""),
                               first_in=at("first_in"), last_out=at("last_out"), status=request.POST.get("status") or None)
        except ValueError as exc:
            error = str(exc)
        else:
            messages.success(request, "Record corrected; the change is in its audit trail.")
            return redirect("employee-history", pk=record.employee_id)
    return render(request, "attendance/correct.html", {
        "record": record, "error": error, "statuses": AttendanceRecord.Status.choices,
        "corrections": record.corrections.select_related("changed_by")})


@login_required
def monitor(request: HttpRequest) -> HttpResponse:
    """Live recognitions from every kiosk and device (the websocket adds them as they happen)."""
    _manager_only(request)
    device_id = _query_id(request, "device")
    return render(request, "attendance/monitor.html", {
        "entries": recognitions_for(request.user, device_id=device_id, limit=50),
        "devices": device_statuses(),
        "device_id": device_id,
        "camera_view": may_view_cameras(request.user),
        "offline_seconds": settings.ROLLCALL_DEVICE_OFFLINE_SECONDS,
    })


@login_required
def monitor_thumbnail(request: HttpRequest, pk: int) -> FileResponse:
    """A monitor face thumbnail, for the managers who may see that recognition (never cached)."""
    _manager_only(request)
    entry = get_object_or_404(RecognitionLog, pk=pk)
    visible = entry.employee_id is None or visible_employees(request.user).filter(pk=entry.employee_id).exists()
    if not entry.thumbnail or not visible:
        raise Http404
    return image_response(entry.thumbnail, name=f"recognition-{entry.pk}", cache_control="private, no-store")

