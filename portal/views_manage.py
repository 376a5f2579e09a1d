"""Administration in the portal (/manage/): people, departments, shifts, shift assignments,
holidays and devices. Each view asks portal/permissions.py, parses a form (portal/forms.py) and
calls one service; admins manage everything, managers the employees of their own department."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from attendance import services_admin
from attendance.models import Holiday, HolidayList, Shift, ShiftAssignment
from portal import forms, permissions
from portal.api import MAX_ID
from portal.models import Department, Device, Employee
from portal.services import (
    department_create,
    department_delete,
    department_update,
    device_create,
    device_deactivate,
    device_rotate_token,
    employee_create,
    employee_set_password,
    employee_update,
)
from recognition.models import FaceImage


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def _post_id(request: HttpRequest, name: str) -> int:
    """An id posted by a button; anything but an id is no such object (a 404, never a 500)."""
    value = request.POST.get(name, "")
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
        raise Http404
    return int(value)


def _enroll_photo(request: HttpRequest, employee: Employee, photo) -> bool:  # type: ignore[no-untyped-def]
    """Enrol ``photo`` through the recognition worker; the quality gate's reason goes to the page."""
    from recognition import workers
    from recognition.pipeline.errors import PipelineError

    try:
        workers.enroll(employee=employee, data=photo.read(), filename=photo.name, source=FaceImage.Source.UPLOAD,
                       created_by=request.user)
    except PipelineError as exc:
        messages.error(request, f"Photo not added: {exc.detail}")
        return False
    messages.success(request, f"Photo enrolled for {employee.full_name}.")
    return True


@login_required
def index(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_people(request.user))
    user = request.user
    return render(request, "portal/manage/index.html", {
        "people": permissions.visible_employees(user).count(),
        "departments": Department.objects.count() if permissions.may_manage_departments(user) else None,
        "shifts": Shift.objects.count() if permissions.may_manage_shifts(user) else None,
        "assignments": ShiftAssignment.objects.count() if permissions.may_manage_shifts(user) else None,
        "holiday_lists": HolidayList.objects.count() if permissions.may_manage_shifts(user) else None,
        "devices": Device.objects.count() if permissions.may_manage_devices(user) else None,
    })


# --- People ----------------------------------------------------------------------------------------

@login_required
def people(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_people(request.user))
    filters = forms.PeopleFilterForm(request.GET or None)
    employees = (permissions.visible_employees(request.user).select_related("department", "user")
                 .annotate(face_count=Count("faces")).order_by("full_name"))
    if filters.is_valid():
        data = filters.cleaned_data
        if data["q"]:
            q = data["q"].strip()
            employees = employees.filter(Q(full_name__icontains=q) | Q(code__icontains=q)
                                         | Q(user__username__icontains=q))
        if data["department"]:
            employees = employees.filter(department=data["department"])
        if data["role"]:
            employees = employees.filter(role=data["role"])
        if data["active"]:
            employees = employees.filter(is_active=data["active"] == "yes")
    editable = set(permissions.manageable_employees(request.user).values_list("pk", flat=True))
    return render(request, "portal/manage/people.html", {
        "filters": filters, "employees": employees, "editable": editable,
        "may_create": permissions.may_create_employee(
            request.user, department_id=getattr(permissions.employee_of(request.user), "department_id", None),
            role=Employee.Role.EMPLOYEE)})


def _limit_choices(request: HttpRequest, form: forms.EmployeeForm) -> None:
    """Managers place employees (role employee) in their own department only."""
    if permissions.is_admin(request.user):
        return
    me = permissions.employee_of(request.user)
    form.fields["department"].queryset = Department.objects.filter(pk=getattr(me, "department_id", None))
    form.fields["department"].empty_label = None
    form.fields["role"].choices = [(Employee.Role.EMPLOYEE, Employee.Role.EMPLOYEE.label)]


@login_required
def person_new(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_people(request.user))
    form = forms.EmployeeForm(request.POST or None, request.FILES or None)
    _limit_choices(request, form)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        department_id = data["department"].pk if data["department"] else None
        _require(permissions.may_create_employee(request.user, department_id=department_id, role=data["role"]))
        employee = employee_create(
            code=data["code"], full_name=data["full_name"], department_id=department_id, role=data["role"],
            is_active=data["is_active"], biometric_consent_at=timezone.now() if data["consent"] else None,
            username=data["username"], password=data["password"])
        messages.success(request, f"{employee.full_name} added.")
        if data["photo"] and not _enroll_photo(request, employee, data["photo"]):
            return redirect("manage-person", pk=employee.pk)  # try another photo there
        return redirect("manage-people")
    return render(request, "portal/manage/person_form.html", {"form": form, "employee": None})


@login_required
def person_edit(request: HttpRequest, pk: int) -> HttpResponse:
    employee = get_object_or_404(permissions.visible_employees(request.user).select_related("user"), pk=pk)
    _require(permissions.may_edit(request.user, employee))
    initial = {"code": employee.code, "full_name": employee.full_name, "department": employee.department_id,
               "role": employee.role, "is_active": employee.is_active,
               "consent": employee.biometric_consent_at is not None,
               "username": employee.user.get_username() if employee.user else ""}
    form = forms.EmployeeForm(request.POST or None, request.FILES or None, employee=employee, initial=initial)
    _limit_choices(request, form)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        department_id = data["department"].pk if data["department"] else None
        _require(permissions.may_change_role(request.user, employee, data["role"]))
        if department_id != employee.department_id:
            _require(permissions.may_place_in_department(request.user, department_id))
        consent = employee.biometric_consent_at if data["consent"] else None
        if data["consent"] and consent is None:
            consent = timezone.now()
        employee_update(employee=employee, code=data["code"], full_name=data["full_name"], department_id=department_id,
                        role=data["role"], is_active=data["is_active"], biometric_consent_at=consent)
        if data["password"]:
            employee_set_password(employee=employee, username=data["username"] or employee.code,
                                  password=data["password"])
            if employee.user_id == request.user.pk:  # one's own new password: stay signed in here
                employee.user.refresh_from_db()
                update_session_auth_hash(request, employee.user)
        messages.success(request, f"{employee.full_name} saved.")
        if data["photo"]:
            _enroll_photo(request, employee, data["photo"])
            return redirect("manage-person", pk=employee.pk)
        return redirect("manage-people")
    return render(request, "portal/manage/person_form.html", {
        "form": form, "employee": employee, "faces": employee.faces.all()})


@login_required
@require_POST
def person_active(request: HttpRequest, pk: int) -> HttpResponse:
    """Deactivate (or reactivate) a person: they leave the gallery index and the reports."""
    employee = get_object_or_404(permissions.visible_employees(request.user), pk=pk)
    _require(permissions.may_edit(request.user, employee))
    active = request.POST.get("active") == "on"
    if not active and employee.user_id is not None and employee.user_id == request.user.pk:
        messages.error(request, "You cannot deactivate yourself (ask another admin).")
        return redirect("manage-people")
    employee_update(employee=employee, is_active=active)
    messages.success(request, f"{employee.full_name} is {'active' if active else 'deactivated'}.")
    return redirect("manage-people")


# --- Departments -------------------------------------------------------------------------------------

@login_required
def departments(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_departments(request.user))
    form = forms.DepartmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        department = department_create(name=form.cleaned_data["name"])
        messages.success(request, f"Department {department.name} added.")
        return redirect("manage-departments")
    return render(request, "portal/manage/departments.html", {
        "form": form, "departments": Department.objects.annotate(people=Count("employees"))})


@login_required
def department_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require(permissions.may_manage_departments(request.user))
    department = get_object_or_404(Department, pk=pk)
    if request.method == "POST" and request.POST.get("delete") == "yes":
        department_delete(department=department)
        messages.success(request, f"Department {department.name} deleted; its people have no department now.")
        return redirect("manage-departments")
    form = forms.DepartmentForm(request.POST or None, department=department, initial={"name": department.name})
    if request.method == "POST" and form.is_valid():
        department_update(department=department, name=form.cleaned_data["name"])
        messages.success(request, "Department renamed.")
        return redirect("manage-departments")
    return render(request, "portal/manage/department_form.html", {"form": form, "department": department})


# --- Shifts, assignments, holidays -----------------------------------------------------------------

@login_required
def shifts(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_shifts(request.user))
    return render(request, "portal/manage/shifts.html", {
        "shifts": Shift.objects.select_related("holiday_list").order_by("name"), "weekdays": dict(forms.WEEKDAYS)})


@login_required
def shift_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    _require(permissions.may_manage_shifts(request.user))
    shift = get_object_or_404(Shift, pk=pk) if pk is not None else None
    if shift is not None and request.method == "POST" and request.POST.get("delete") == "yes":
        services_admin.shift_delete(shift=shift)
        messages.success(request, f"Shift {shift.name} deleted.")
        return redirect("manage-shifts")
    # The form validates only; the service writes (instance is a copy it never saves).
    form = forms.ShiftForm(request.POST or None, instance=Shift.objects.get(pk=shift.pk) if shift else None)
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in forms.ShiftForm.Meta.fields}
        if shift is None:
            shift = services_admin.shift_create(**values)
            messages.success(request, f"Shift {shift.name} added.")
        else:
            services_admin.shift_update(shift=shift, **values)
            messages.success(request, f"Shift {shift.name} saved.")
        return redirect("manage-shifts")
    return render(request, "portal/manage/shift_form.html", {"form": form, "shift": shift})


@login_required
def assignments(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_shifts(request.user))
    form = forms.ShiftAssignmentForm(request.POST or None, initial={"valid_from": timezone.localdate()})
    if request.method == "POST" and request.POST.get("delete"):
        assignment = get_object_or_404(ShiftAssignment, pk=_post_id(request, "delete"))
        services_admin.shift_assignment_delete(assignment=assignment)
        messages.success(request, "Assignment removed.")
        return redirect("manage-assignments")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        assignment = services_admin.shift_assignment_create(
            shift=data["shift"], employee=data["employee"], department=data["department"],
            valid_from=data["valid_from"], valid_to=data["valid_to"])
        messages.success(request, f"Assigned: {assignment}.")
        return redirect("manage-assignments")
    return render(request, "portal/manage/assignments.html", {
        "form": form,
        "assignments": ShiftAssignment.objects.select_related("shift", "employee", "department")})


@login_required
def holiday_lists(request: HttpRequest) -> HttpResponse:
    _require(permissions.may_manage_shifts(request.user))
    form = forms.HolidayListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        holiday_list = services_admin.holiday_list_create(name=form.cleaned_data["name"])
        messages.success(request, f"Holiday list {holiday_list.name} added: add its dates now.")
        return redirect("manage-holiday-list", pk=holiday_list.pk)
    return render(request, "portal/manage/holiday_lists.html", {
        "form": form, "holiday_lists": HolidayList.objects.annotate(days=Count("holidays"), used_by=Count("shifts"))})


@login_required
def holiday_list_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require(permissions.may_manage_shifts(request.user))
    holiday_list = get_object_or_404(HolidayList, pk=pk)
    if request.method == "POST" and request.POST.get("delete_list") == "yes":
        services_admin.holiday_list_delete(holiday_list=holiday_list)
        messages.success(request, f"Holiday list {holiday_list.name} deleted.")
        return redirect("manage-holiday-lists")
    if request.method == "POST" and request.POST.get("delete"):
        holiday = get_object_or_404(Holiday, pk=_post_id(request, "delete"), holiday_list=holiday_list)
        services_admin.holiday_delete(holiday=holiday)
        messages.success(request, f"{holiday.name} removed.")
        return redirect("manage-holiday-list", pk=pk)
    form = forms.HolidayForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        holiday = services_admin.holiday_add(holiday_list=holiday_list, **form.cleaned_data)
        messages.success(request, f"{holiday.name} added.")
        return redirect("manage-holiday-list", pk=pk)
    return render(request, "portal/manage/holiday_list.html", {
        "form": form, "holiday_list": holiday_list, "holidays": holiday_list.holidays.all()})


# --- Devices --------------------------------------------------------------------------------------

@login_required
def devices(request: HttpRequest) -> HttpResponse:
    """Devices; a new token (creation, rotation) is shown in this response only and never stored."""
    _require(permissions.may_manage_devices(request.user))
    form = forms.DeviceForm(request.POST or None if request.POST.get("action") == "create" else None)
    token, token_device = None, None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create" and form.is_valid():
            token_device, token = device_create(name=form.cleaned_data["name"], location=form.cleaned_data["location"])
            form = forms.DeviceForm()
        elif action in ("rotate", "deactivate"):
            device = get_object_or_404(Device, pk=_post_id(request, "device"))
            if action == "rotate":
                token_device, token = device_rotate_token(device=device)
            else:
                device_deactivate(device=device)
                messages.success(request, f"{device.name} deactivated: its token no longer works.")
                return redirect("manage-devices")
    response = render(request, "portal/manage/devices.html", {
        "form": form, "devices": Device.objects.all(), "token": token, "token_device": token_device})
    if token:
        response["Cache-Control"] = "no-store"
    return response
