"""Kiosk and device check-ins over the REST API."""

from __future__ import annotations

import re

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attendance.exports import records_csv
from attendance.selectors import MAX_PERIOD_DAYS, month_sheet, records_for
from attendance.services import (
    BURST_MAX_FRAMES,
    CAPTURED_AT_DEVICES_ONLY,
    IDEMPOTENCY_KEY,
    CaptureTimeError,
    check_in_submit,
)
from portal.api import Pagination, id_field, page_of
from portal.authentication import IsDeviceOrManager, IsManager
from portal.models import Department, Device
from portal.permissions import check_in_answer_for
from recognition.api import read_upload
from recognition.services import check_burst_bytes


class EventRefused(APIException):
    """A device event that can never be accepted as sent (``captured_at_too_old``,
    ``captured_at_invalid``): the device moves it to its dead-letter table rather than retrying."""

    status_code = 400
    default_code = "event_refused"
    default_detail = "This event cannot be accepted."


def _check_department(department_id: int | None) -> None:
    if department_id is not None and not Department.objects.filter(pk=department_id).exists():
        raise serializers.ValidationError({"department": ["No department with this id."]})


class OffsetDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that must carry its offset: DRF would read a naive one in the server's
    zone, while the service (and the websocket) refuse it as ``captured_at_invalid``."""

    def enforce_timezone(self, value):
        return value if timezone.is_naive(value) else super().enforce_timezone(value)


class CheckInOutput(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["checked_in", "checked_out", "repeated", "unknown", "liveness_failed", "no_face"])
    message = serializers.CharField()
    employee_id = serializers.IntegerField(allow_null=True)
    employee = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)
    worked_seconds = serializers.IntegerField(allow_null=True)
    liveness = serializers.CharField(allow_null=True)
    similarity = serializers.FloatField(allow_null=True)


class CheckInApi(APIView):
    """A burst of frames (about 2 s) from a kiosk or a device: recognition, liveness, check-in/out."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [IsDeviceOrManager]

    class CheckInInput(serializers.Serializer):
        frames = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=BURST_MAX_FRAMES)
        fps = serializers.FloatField(min_value=1, max_value=120, default=12.0)
        key = serializers.RegexField(
            IDEMPOTENCY_KEY, required=False,
            help_text="Devices: a unique key per captured event (or the Idempotency-Key header). A repeated key "
                      "gets the first answer and is stored once.")
        captured_at = OffsetDateTimeField(
            required=False, help_text="Devices: when the burst was captured (ISO 8601 with offset); a queued "
                                      "event delivered late counts at this time.")
        challenge = serializers.CharField(
            required=False, max_length=300,
            help_text="In the challenge liveness mode: the token from POST /api/v1/liveness/challenge; the burst "
                      "must show the head turn it asked for. Without one the burst must show a blink.")

    @extend_schema(request={"multipart/form-data": CheckInInput}, responses=CheckInOutput)
    def post(self, request: Request) -> Response:
        check_burst_bytes(request.META.get("CONTENT_LENGTH"))  # before the body is read
        data = self.CheckInInput(data=request.data)
        data.is_valid(raise_exception=True)
        device = request.auth if isinstance(request.auth, Device) else None
        key = data.validated_data.get("key") or request.headers.get("Idempotency-Key") or None
        if key is not None and (device is None or not re.fullmatch(IDEMPOTENCY_KEY, key)):
            raise serializers.ValidationError({"key": ["Idempotency keys are for devices: 8-64 letters, digits, '-' or '_'."]})
        if device is None and data.validated_data.get("captured_at") is not None:
            raise serializers.ValidationError({"captured_at": [CAPTURED_AT_DEVICES_ONLY]})
        frames = [read_upload(frame) for frame in data.validated_data["frames"]]  # size checks before staging
        try:
            answer = check_in_submit(frames=frames, fps=data.validated_data["fps"], device=device, key=key,
                                     captured_at=data.validated_data.get("captured_at"),
                                     challenge=data.validated_data.get("challenge"))
        except CaptureTimeError as exc:
            raise EventRefused(detail=str(exc), code=exc.code) from None
        return Response(check_in_answer_for(request.user, answer, device=device is not None))


class RecordOutput(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    employee_id = serializers.IntegerField()
    employee = serializers.CharField(source="employee.full_name")
    status = serializers.CharField()
    first_in = serializers.DateTimeField(allow_null=True)
    last_out = serializers.DateTimeField(allow_null=True)
    worked_seconds = serializers.IntegerField()
    late = serializers.BooleanField()
    early_exit = serializers.BooleanField()
    missing_checkout = serializers.BooleanField()
    corrected = serializers.BooleanField()


class RecordListApi(APIView):
    """Attendance records the caller may see (employees: their own), filtered and paged;
    ``?export=csv`` gives the same rows as CSV."""

    permission_classes = [IsAuthenticated]

    class RecordFilter(serializers.Serializer):
        to = serializers.DateField(required=False, help_text="last day, YYYY-MM-DD (default: today)")
        department = id_field(required=False)
        employee = id_field(required=False)
        export = serializers.ChoiceField(choices=["csv"], required=False, help_text="csv: the same rows as a CSV file")

        def get_fields(self):
            fields = super().get_fields()
            fields["from"] = serializers.DateField(required=False, help_text="first day (default: the 1st of this month)")
            return fields

        def validate(self, attrs: dict) -> dict:
            today = timezone.localdate()
            attrs.setdefault("from", today.replace(day=1))
            attrs.setdefault("to", today)
            if attrs["to"] < attrs["from"] or (attrs["to"] - attrs["from"]).days > MAX_PERIOD_DAYS:
                raise serializers.ValidationError("The period must run forward and be at most a year.")
            return attrs

    @extend_schema(
        operation_id="v1_attendance_records_list",
        parameters=[RecordFilter, OpenApiParameter("page", int, description="page number (pages of 50)")],
        responses={(200, "application/json"): page_of(RecordOutput),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="with ?export=csv")})
    def get(self, request: Request) -> Response | HttpResponse:
        query = self.RecordFilter(data={k: v for k, v in request.query_params.items() if v != "" and k != "page"})
        query.is_valid(raise_exception=True)
        _check_department(query.validated_data.get("department"))
        start, end = query.validated_data["from"], query.validated_data["to"]  # defaults filled by validate
        records = records_for(request.user, start=start, end=end, department_id=query.validated_data.get("department"))
        if "employee" in query.validated_data:
            records = records.filter(employee_id=query.validated_data["employee"])
        if query.validated_data.get("export") == "csv":
            response = HttpResponse(records_csv(records), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="attendance_{start}_{end}.csv"'
            return response
        paginator = Pagination()
        page = paginator.paginate_queryset(records, request, view=self)
        return paginator.get_paginated_response(RecordOutput(page, many=True).data)


class MonthEmployee(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    letters = serializers.ListField(child=serializers.CharField(allow_blank=True))
    totals = serializers.DictField(child=serializers.IntegerField())
    worked_hours = serializers.FloatField()


class WeekLate(serializers.Serializer):
    week = serializers.CharField()
    late = serializers.IntegerField()


class MonthSheetOutput(serializers.Serializer):
    month = serializers.CharField()
    days = serializers.ListField(child=serializers.DateField())
    employees = MonthEmployee(many=True)
    daily_rate = serializers.ListField(child=serializers.FloatField())
    weekly_late = WeekLate(many=True)


class MonthSheetApi(APIView):
    """The monthly sheet as JSON: per employee the status letter of every day, totals and hours,
    plus the attendance rate per day and late arrivals per week (managers and admins)."""

    permission_classes = [IsManager]

    class MonthQuery(serializers.Serializer):
        month = serializers.RegexField(r"^\d{4}-\d{2}$", required=False, help_text="YYYY-MM (default: this month)")
        department = id_field(required=False)

        def validate_month(self, value: str) -> str:
            year, month = (int(x) for x in value.split("-"))
            if not (1 <= year and 1 <= month <= 12):
                raise serializers.ValidationError("A month YYYY-MM: year 0001-9999, month 01-12.")
            return value

    @extend_schema(parameters=[MonthQuery], responses=MonthSheetOutput)
    def get(self, request: Request) -> Response:
        query = self.MonthQuery(data={k: v for k, v in request.query_params.items() if v != ""})
        query.is_valid(raise_exception=True)
        _check_department(query.validated_data.get("department"))
        today = timezone.localdate()
        year, month = (int(x) for x in query.validated_data.get("month", f"{today.year}-{today.month:02d}").split("-"))
        if not 1 <= month <= 12:
            raise serializers.ValidationError({"month": ["Month must be 01-12."]})
        sheet = month_sheet(request.user, year=year, month=month, department_id=query.validated_data.get("department"))
        return Response({
            "month": f"{year}-{month:02d}",
            "days": [day.isoformat() for day in sheet.days],
            "employees": [{"id": row.employee.pk, "name": row.employee.full_name, "letters": row.letters,
                           "totals": row.totals, "worked_hours": row.worked_hours} for row in sheet.rows],
            "daily_rate": sheet.daily_rate,
            "weekly_late": [{"week": week, "late": count} for week, count in sheet.weekly_late],
        })
