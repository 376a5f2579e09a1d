"""REST API for people and devices: one view per operation, small nested serializers."""

from __future__ import annotations

from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import Pagination, id_field, page_of
from portal.authentication import DeviceTokenAuthentication, IsAdmin, IsDevice, IsManager
from portal.models import Department, Device, Employee
from portal.permissions import (
    employee_of,
    is_admin,
    may_change_role,
    may_create_employee,
    may_delete,
    may_edit,
    may_place_in_department,
    visible_departments,
    visible_employees,
)
from portal.services import (
    EmployeeCodeTaken,
    device_create,
    device_delete,
    device_rotate_token,
    device_update,
    employee_create,
    employee_delete,
    employee_update,
)


class EmployeeOutput(serializers.ModelSerializer):
    department = serializers.CharField(source="department.name", default=None, allow_null=True)
    username = serializers.CharField(source="user.username", default=None, allow_null=True)
    face_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Employee
        fields = ["id", "code", "full_name", "department", "department_id", "role", "is_active",
                  "biometric_consent_at", "username", "face_count", "created_at"]


class EmployeeInput(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    full_name = serializers.CharField(max_length=200)
    department_id = id_field(required=False, allow_null=True)
    role = serializers.ChoiceField(choices=Employee.Role.choices, default=Employee.Role.EMPLOYEE)
    is_active = serializers.BooleanField(default=True)
    biometric_consent_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_department_id(self, value: int | None) -> int | None:
        if value is not None and not Department.objects.filter(pk=value).exists():
            raise serializers.ValidationError("No department with this id.")
        return value


def _check_edit(request: Request, employee: Employee, data: dict) -> None:
    """The permission questions for changing ``employee`` with ``data`` (portal/permissions.py)."""
    if not may_edit(request.user, employee):
        raise PermissionDenied("You may not change this employee (managers: employees of their own department only).")
    if "role" in data and not may_change_role(request.user, employee, data["role"]):
        raise PermissionDenied("Only admins change roles.")
    if "department_id" in data and data["department_id"] != employee.department_id \
            and not may_place_in_department(request.user, data["department_id"]):
        raise PermissionDenied("Managers can only place employees in their own department.")


def _employees(request: Request):
    return visible_employees(request.user).select_related("department", "user").annotate(face_count=Count("faces"))


class EmployeeListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="v1_employees_list",
                   parameters=[OpenApiParameter("page", int, description="page number (pages of 50)")],
                   responses=page_of(EmployeeOutput))
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(_employees(request).order_by("full_name"), request, view=self)
        return paginator.get_paginated_response(EmployeeOutput(page, many=True).data)

    @extend_schema(request=EmployeeInput, responses={201: EmployeeOutput})
    def post(self, request: Request) -> Response:
        if not IsManager().has_permission(request, self):
            raise PermissionDenied("Managers and admins only.")
        data = EmployeeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if not is_admin(request.user):
            values.setdefault("department_id", employee_of(request.user).department_id)
        if not may_create_employee(request.user, department_id=values.get("department_id"), role=values["role"]):
            raise PermissionDenied("Managers create employees (role employee) in their own department only.")
        try:
            employee = employee_create(**values)
        except EmployeeCodeTaken:
            raise serializers.ValidationError({"code": ["An employee with this code exists."]}) from None
        return Response(EmployeeOutput(_employees(request).get(pk=employee.pk)).data, status=status.HTTP_201_CREATED)


class EmployeeDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=EmployeeOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(EmployeeOutput(get_object_or_404(_employees(request), pk=pk)).data)

    @extend_schema(request=EmployeeInput, responses=EmployeeOutput)
    def patch(self, request: Request, pk: int) -> Response:
        employee = get_object_or_404(_employees(request), pk=pk)
        data = EmployeeInput(employee, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        _check_edit(request, employee, dict(data.validated_data))
        try:
            employee_update(employee=employee, **data.validated_data)
        except EmployeeCodeTaken:
            raise serializers.ValidationError({"code": ["An employee with this code exists."]}) from None
        return Response(EmployeeOutput(_employees(request).get(pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        employee = get_object_or_404(_employees(request), pk=pk)
        if not may_delete(request.user, employee):
            raise PermissionDenied("You may not delete this employee (managers: employees of their own department "
                                   "only; nobody deletes themselves).")
        employee_delete(employee=employee)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DepartmentOutput(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "name", "created_at"]


class DepartmentListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=DepartmentOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(DepartmentOutput(visible_departments(request.user), many=True).data)

    class DepartmentInput(serializers.Serializer):
        name = serializers.CharField(max_length=120)

    @extend_schema(request=DepartmentInput, responses={201: DepartmentOutput})
    def post(self, request: Request) -> Response:
        if not IsAdmin().has_permission(request, self):
            raise PermissionDenied("Admins only.")
        data = self.DepartmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        department, created = Department.objects.get_or_create(name=data.validated_data["name"])
        if not created:
            raise serializers.ValidationError({"name": ["A department with this name exists."]})
        return Response(DepartmentOutput(department).data, status=status.HTTP_201_CREATED)


class DeviceOutput(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "name", "location", "token_prefix", "is_active", "last_seen_at", "created_at"]


class DeviceListApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=DeviceOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(DeviceOutput(Device.objects.all(), many=True).data)

    class DeviceInput(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        location = serializers.CharField(max_length=200, required=False, default="")

    class DeviceCreated(DeviceOutput):
        token = serializers.CharField(help_text="Shown once: store it on the device now.")

        class Meta(DeviceOutput.Meta):
            fields = [*DeviceOutput.Meta.fields, "token"]

    @extend_schema(request=DeviceInput, responses={201: DeviceCreated})
    def post(self, request: Request) -> Response:
        data = self.DeviceInput(data=request.data)
        data.is_valid(raise_exception=True)
        if Device.objects.filter(name=data.validated_data["name"]).exists():
            raise serializers.ValidationError({"name": ["A device with this name exists."]})
        device, token = device_create(**data.validated_data)
        # The token is in this response only; RollCall keeps just its hash.
        return Response({**DeviceOutput(device).data, "token": token}, status=status.HTTP_201_CREATED)


class DeviceDetailApi(APIView):
    permission_classes = [IsAdmin]

    class DeviceUpdate(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        location = serializers.CharField(max_length=200, required=False, allow_blank=True)
        is_active = serializers.BooleanField(required=False,
                                             help_text="false: the device's open websockets close within seconds")

    @extend_schema(responses=DeviceOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeviceOutput(get_object_or_404(Device, pk=pk)).data)

    @extend_schema(request=DeviceUpdate, responses=DeviceOutput)
    def patch(self, request: Request, pk: int) -> Response:
        device = get_object_or_404(Device, pk=pk)
        data = self.DeviceUpdate(data=request.data)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name")
        if name is not None and Device.objects.filter(name=name).exclude(pk=pk).exists():
            raise serializers.ValidationError({"name": ["A device with this name exists."]})
        return Response(DeviceOutput(device_update(device=device, **data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        device_delete(device=get_object_or_404(Device, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceRotateTokenApi(APIView):
    """A new token for the device; the old one stops working at once (REST and websocket)."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses=DeviceListApi.DeviceCreated)
    def post(self, request: Request, pk: int) -> Response:
        device, token = device_rotate_token(device=get_object_or_404(Device, pk=pk))
        # The token is in this response only; RollCall keeps just its hash.
        return Response({**DeviceOutput(device).data, "token": token})


class DeviceMeApi(APIView):
    """A device's heartbeat: who am I, and record that I am online. The edge client adds its
    dead-letter report (events it gave up on), which the live monitor shows per device."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]

    class DeadLetter(serializers.Serializer):
        key = serializers.CharField(max_length=64, allow_blank=True)
        captured_at = serializers.CharField(max_length=40, allow_blank=True)
        reason = serializers.CharField(max_length=200, allow_blank=True, trim_whitespace=False)

    class HeartbeatInput(serializers.Serializer):
        dead_letters = serializers.IntegerField(required=False, min_value=0, max_value=10**9,
                                                help_text="Events in the device's dead-letter table.")
        recent_dead_letters = serializers.ListField(required=False, max_length=50,
                                                    help_text="The latest dead letters (up to 10 are kept).")

        def validate_recent_dead_letters(self, value: list) -> list:
            items = DeviceMeApi.DeadLetter(data=value, many=True)
            items.is_valid(raise_exception=True)
            return [dict(item) for item in items.validated_data]

    class HeartbeatOutput(DeviceOutput):
        class Meta(DeviceOutput.Meta):
            fields = [*DeviceOutput.Meta.fields, "dead_letters", "dead_letters_reported_at"]

    @extend_schema(request=HeartbeatInput, responses=HeartbeatOutput)
    def post(self, request: Request) -> Response:
        from attendance.services import device_heartbeat

        data = self.HeartbeatInput(data=request.data)
        data.is_valid(raise_exception=True)
        device_heartbeat(device=request.auth, dead_letters=data.validated_data.get("dead_letters"),
                         recent=data.validated_data.get("recent_dead_letters"))
        request.auth.refresh_from_db()
        return Response(self.HeartbeatOutput(request.auth).data)

