"""Administration in the portal (/manage/): an admin sets up a site through the pages, a manager
manages the employees of their own department only, an employee is refused. Real photos go
through the real enrolment (quality gate), devices get real tokens."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from attendance.models import Holiday, HolidayList, Shift, ShiftAssignment
from portal.models import Department, Device, Employee

pytestmark = pytest.mark.django_db


def _login(username: str, role: str, department: Department | None = None, *, staff: bool = False) -> Client:
    user = User.objects.create_user(username, password=f"pw-{username}-123", is_staff=staff)
    Employee.objects.create(user=user, code=username.upper(), full_name=username.title(), role=role,
                            department=department)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture()
def sales() -> Department:
    return Department.objects.create(name="Sales")


@pytest.fixture()
def admin(sales: Department) -> Client:
    return _login("ada", "admin", sales)  # not staff: the role decides


def _messages(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_an_admin_sets_up_departments_shifts_assignments_and_holidays(admin: Client, sales: Department) -> None:
    page = admin.get("/manage/")
    assert page.status_code == 200
    for path in ("/manage/people/", "/manage/departments/", "/manage/shifts/", "/manage/assignments/",
                 "/manage/holidays/", "/manage/devices/"):
        assert f'href="{path}"' in page.content.decode()
    assert admin.post("/manage/departments/", {"name": "Warehouse"}).status_code == 302
    assert admin.post("/manage/departments/", {"name": "warehouse"}).status_code == 200  # exists: form error
    warehouse = Department.objects.get(name="Warehouse")

    form = admin.get("/manage/shifts/new/").content.decode()
    assert form.count('type="checkbox" name="working_days"') == 7 and 'type="time" name="start"' in form
    assert '<label for="id_late_grace_minutes">' in form
    response = admin.post("/manage/shifts/new/", {
        "name": "Early", "start": "07:00", "end": "15:30", "working_days": ["0", "1", "2", "3", "5"],
        "late_grace_minutes": "5", "early_exit_grace_minutes": "15", "half_day_below_hours": "4",
        "absent_below_hours": "1", "checkout_after_end_minutes": "240"})
    assert response.status_code == 302, response.content.decode()[:2000]
    shift = Shift.objects.get(name="Early")
    assert (shift.start, shift.end, shift.working_days, shift.late_grace_minutes) == (dt.time(7), dt.time(15, 30),
                                                                                       [0, 1, 2, 3, 5], 5)
    listing = admin.get("/manage/shifts/").content.decode()
    assert "07:00–15:30" in listing and "Mon, Tue, Wed, Thu, Sat" in listing

    response = admin.post("/manage/assignments/", {"shift": shift.pk, "department": warehouse.pk,
                                                   "valid_from": "2026-01-01"})
    assert response.status_code == 302
    assignment = ShiftAssignment.objects.get()
    assert str(assignment) == "Early → Warehouse from 2026-01-01"
    both = admin.post("/manage/assignments/", {"shift": shift.pk, "department": warehouse.pk, "employee":
                      Employee.objects.first().pk, "valid_from": "2026-01-01"})
    assert both.status_code == 200 and "one of them" in both.content.decode()

    response = admin.post("/manage/holidays/", {"name": "Public holidays"})
    holiday_list = HolidayList.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/manage/holidays/{holiday_list.pk}/"
    admin.post(f"/manage/holidays/{holiday_list.pk}/", {"date": "2026-12-25", "name": "Christmas"})
    assert Holiday.objects.get().date == dt.date(2026, 12, 25)
    assert admin.post(f"/manage/holidays/{holiday_list.pk}/", {"delete": "not-an-id"}).status_code == 404

    edit = admin.post(f"/manage/shifts/{shift.pk}/", {
        "name": "Early", "start": "07:00", "end": "15:00", "working_days": ["0", "1", "2", "3", "4"],
        "late_grace_minutes": "5", "early_exit_grace_minutes": "15", "half_day_below_hours": "4",
        "absent_below_hours": "1", "checkout_after_end_minutes": "240", "holiday_list": holiday_list.pk})
    assert edit.status_code == 302
    shift.refresh_from_db()
    assert shift.end == dt.time(15) and shift.holiday_list == holiday_list and shift.working_days == [0, 1, 2, 3, 4]


def test_an_admin_adds_a_person_with_a_photo_and_hears_why_a_photo_is_refused(admin: Client, sales: Department,
                                                                              people, faces_dir) -> None:
    form = admin.get("/manage/people/new/").content.decode()
    for name in ("code", "full_name", "department", "role", "consent", "username", "password", "photo"):
        assert f'<label for="id_{name}"' in form, name
    photo = people["joe_biden"][0]
    response = admin.post("/manage/people/new/", {
        "code": "E-9", "full_name": "Joe Example", "department": sales.pk, "role": "employee", "is_active": "on",
        "consent": "on", "username": "joe", "password": "a-long-pass-123",
        "photo": SimpleUploadedFile("joe.jpg", photo.read_bytes(), content_type="image/jpeg")}, follow=True)
    joe = Employee.objects.get(code="E-9")
    assert joe.faces.count() == 1 and joe.biometric_consent_at is not None and joe.department == sales
    assert joe.user.check_password("a-long-pass-123")
    assert "Photo enrolled for Joe Example." in _messages(response)

    refused = admin.post(f"/manage/people/{joe.pk}/", {
        "code": "E-9", "full_name": "Joe Example", "department": sales.pk, "role": "employee", "is_active": "on",
        "consent": "on", "photo": SimpleUploadedFile("none.jpg", (faces_dir / "no_face.jpg").read_bytes())},
        follow=True)
    text = _messages(refused)
    assert text.startswith("Joe Example saved.") and "Photo not added:" in text and "face" in text.lower()
    assert joe.faces.count() == 1

    no_consent = admin.post("/manage/people/new/", {
        "code": "E-10", "full_name": "No Consent", "role": "employee",
        "photo": SimpleUploadedFile("joe.jpg", photo.read_bytes())})
    assert no_consent.status_code == 200 and "consent" in no_consent.content.decode()
    assert not Employee.objects.filter(code="E-10").exists()

    # The site's password rules apply here as on every password form.
    for weak in ("1", "password", "12345678"):
        refused = admin.post(f"/manage/people/{joe.pk}/", {
            "code": "E-9", "full_name": "Joe Example", "department": sales.pk, "role": "employee",
            "is_active": "on", "consent": "on", "password": weak})
        assert refused.status_code == 200 and 'id="id_password"' in refused.content.decode(), weak
        joe.user.refresh_from_db()
        assert joe.user.check_password("a-long-pass-123"), weak

    listing = admin.get("/manage/people/", {"q": "exam", "department": sales.pk, "role": "employee", "active": "yes"})
    assert "Joe Example" in listing.content.decode() and "Ada" not in listing.content.decode()
    assert admin.post(f"/manage/people/{joe.pk}/active/").status_code == 302
    joe.refresh_from_db()
    assert not joe.is_active
    assert "Joe Example" in admin.get("/manage/people/", {"active": "no"}).content.decode()
    assert "Joe Example" not in admin.get("/manage/people/", {"active": "yes"}).content.decode()
    me = Employee.objects.get(code="ADA")
    admin.post(f"/manage/people/{me.pk}/active/")
    me.refresh_from_db()
    assert me.is_active  # an admin does not lock themselves out


def test_a_device_token_is_shown_once_rotated_and_deactivated(admin: Client) -> None:
    response = admin.post("/manage/devices/", {"action": "create", "name": "Front door", "location": "Lobby"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = re.search(r'id="new-token" class="token" readonly value="([^"]+)"', response.content.decode()).group(1)
    device = Device.objects.get(name="Front door")
    assert Device.for_token(token) == device
    assert token not in admin.get("/manage/devices/").content.decode()  # shown once
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    assert api.post("/api/v1/device/heartbeat").status_code == 200

    rotated = admin.post("/manage/devices/", {"action": "rotate", "device": device.pk}).content.decode()
    new_token = re.search(r'readonly value="([^"]+)"', rotated).group(1)
    assert new_token != token and Device.for_token(token) is None and Device.for_token(new_token) == device
    admin.post("/manage/devices/", {"action": "deactivate", "device": device.pk})
    assert Device.for_token(new_token) is None
    assert admin.post("/manage/devices/", {"action": "rotate", "device": "x"}).status_code == 404


def test_a_manager_manages_only_their_own_departments_employees(sales: Department) -> None:
    other = Department.objects.create(name="Other")
    manager = _login("mia", "manager", sales)
    mine = Employee.objects.create(code="S1", full_name="Sam Sales", department=sales)
    theirs = Employee.objects.create(code="O1", full_name="Olga Other", department=other)
    listing = manager.get("/manage/people/").content.decode()
    assert "Sam Sales" in listing and "Olga Other" not in listing
    for path in ("/manage/departments/", "/manage/shifts/", "/manage/assignments/", "/manage/holidays/",
                 "/manage/devices/"):
        response = manager.get(path)
        assert response.status_code == 403 and "You may not open this page" in response.content.decode(), path
    assert manager.get(f"/manage/people/{theirs.pk}/").status_code == 404
    form = manager.get("/manage/people/new/").content.decode()
    assert '<option value="manager"' not in form and f'<option value="{other.pk}"' not in form
    created = manager.post("/manage/people/new/", {"code": "S2", "full_name": "New Sales", "department": sales.pk,
                                                   "role": "employee", "is_active": "on"})
    assert created.status_code == 302 and Employee.objects.get(code="S2").department == sales
    refused = manager.post("/manage/people/new/", {"code": "S3", "full_name": "Elsewhere", "department": other.pk,
                                                   "role": "employee"})
    assert refused.status_code == 200 and not Employee.objects.filter(code="S3").exists()
    promote = manager.post(f"/manage/people/{mine.pk}/", {"code": "S1", "full_name": "Sam Sales",
                                                         "department": sales.pk, "role": "manager"})
    assert promote.status_code == 200  # not a choice for a manager
    mine.refresh_from_db()
    assert mine.role == "employee"


def test_an_employee_is_refused_with_a_styled_page() -> None:
    employee = _login("eve", "employee")
    response = employee.get("/manage/people/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You may not open this page" in page and 'rel="stylesheet"' in page and 'aria-label="Main"' in page
