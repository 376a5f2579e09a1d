"""Attendance pages: the kiosk, the today board, the monthly sheet with charts, CSV/XLSX export."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie

from attendance.exports import records_csv, records_xlsx
from attendance.selectors import month_sheet, records_for, today_board
from portal.models import Department
from portal.permissions import is_manager


@ensure_csrf_cookie
def kiosk(request: HttpRequest) -> HttpResponse:
    """Open to managers (logged in) and to device-token kiosks (the token is kept in the browser
    and sent with each burst; the page itself shows nothing private)."""
    return render(request, "attendance/kiosk.html", {"session_ok": is_manager(request.user)})


def _manager_only(request: HttpRequest) -> None:
    if not is_manager(request.user):
        raise Http404


def _filters(request: HttpRequest) -> dict[str, int | None]:
    department = request.GET.get("department", "")
    return {"department_id": int(department) if department.isdigit() else None}


@login_required
def today(request: HttpRequest) -> HttpResponse:
    _manager_only(request)
    filters = _filters(request)
    return render(request, "attendance/today.html", {
        "board": today_board(request.user, **filters), "departments": Department.objects.all(), **filters})


@login_required
def month(request: HttpRequest) -> HttpResponse:
    _manager_only(request)
    now = timezone.localdate()
    try:
        year, number = (int(x) for x in request.GET.get("month", f"{now.year}-{now.month}").split("-"))
        dt.date(year, number, 1)
    except ValueError:
        year, number = now.year, now.month
    filters = _filters(request)
    sheet = month_sheet(request.user, year=year, month=number, **filters)
    bars = [{"x": i * 22 + 4, "h": round(rate * 100), "y": 104 - round(rate * 100), "day": day.day, "rate": rate}
            for i, (day, rate) in enumerate(zip(sheet.days, sheet.daily_rate))]
    peak = max([count for _, count in sheet.weekly_late] + [1])
    late_bars = [{"x": i * 60 + 10, "h": round(count / peak * 100), "y": 104 - round(count / peak * 100),
                  "week": week, "count": count} for i, (week, count) in enumerate(sheet.weekly_late)]
    return render(request, "attendance/month.html", {
        "sheet": sheet, "bars": bars, "late_bars": late_bars, "month_value": f"{year}-{number:02d}",
        "chart_width": len(bars) * 22 + 8, "late_chart_width": len(late_bars) * 60 + 20,
        "departments": Department.objects.all(), **filters})


@login_required
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    _manager_only(request)
    if fmt not in ("csv", "xlsx"):
        raise Http404
    today_date = timezone.localdate()
    try:
        start = dt.date.fromisoformat(request.GET.get("from", today_date.replace(day=1).isoformat()))
        end = dt.date.fromisoformat(request.GET.get("to", today_date.isoformat()))
    except ValueError:
        return HttpResponse("Dates must be YYYY-MM-DD.", status=400, content_type="text/plain")
    records = records_for(request.user, start=start, end=end, **_filters(request))
    name = f"attendance_{start}_{end}.{fmt}"
    if fmt == "xlsx":
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        response = HttpResponse(records_xlsx(records), content_type=content_type)
    else:
        response = HttpResponse(records_csv(records), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
