"""The permission matrix, over HTTP: caller role x action x target, through the real URLs
(Django's test client / DRF's APIClient, sessions and device tokens as in production).

Callers: an admin, a manager of department A, a manager of department B, an employee of A,
an anonymous visitor and a door device. Targets: the admin (in A), a peer manager (A), the
manager of B, an employee of A, an employee of B, and the caller themselves. The expected answer
of every cell comes from the rule table below, written independently of portal/permissions.py;
a refused cell must also leave the database exactly as it was, an allowed change must show.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import AttendanceRecord
from portal.models import Department, Device, Employee
from portal.services import device_create
from recognition.models import EnrolmentCode, ErasureRequest, FaceImage
from recognition.services import erasure_request_create, face_enroll, gallery_changed

PERSON = "joe_biden"  # the targets' photos; recognition probes use another photo of the same person

# --- The population and the rule table ---------------------------------------------------------------

PEOPLE = {  # name: (role, department)
    "admin": ("admin", "A"),
    "manager_a": ("manager", "A"),
    "manager_a2": ("manager", "A"),
    "manager_b": ("manager", "B"),
    "employee": ("employee", "A"),
    "employee_a2": ("employee", "A"),
    "employee_b": ("employee", "B"),
}
CALLERS = ["admin", "manager_a", "manager_b", "employee", "anonymous", "device"]
TARGETS = ["admin", "manager_a2", "manager_b", "employee_a2", "employee_b", "self"]
#          admin,   peer manager of A, other-dept manager, own-dept employee, other-dept employee
PEOPLE_CALLERS = {"admin", "manager_a", "manager_b", "employee"}


def _role(name: str) -> str:
    return PEOPLE[name][0]


def sees(caller: str, target: str) -> bool:
    if _role(caller) == "admin":
        return True
    if _role(caller) == "manager":
        return PEOPLE[target][1] == PEOPLE[caller][1]
    return target == caller


def acts(caller: str, target: str) -> bool:
    """Edit, deactivate, delete, faces, enrolment codes, corrections."""
    if _role(caller) == "admin":
        return True
    return (_role(caller) == "manager" and target != caller and _role(target) == "employee"
            and PEOPLE[target][1] == PEOPLE[caller][1])


RULES: dict[str, Callable[[str, str], bool]] = {
    "view": sees,
    "act": acts,
    "role": lambda caller, target: _role(caller) == "admin",
    "verify": lambda caller, target: sees(caller, target) if _role(caller) != "employee" else caller == target,
    "report": lambda caller, target: _role(caller) != "employee" and sees(caller, target),
    "admin_site": lambda caller, target: _role(caller) == "admin",
    # Deleting: as acting, but nobody deletes their own row (an admin would lock themselves out).
    "delete": lambda caller, target: acts(caller, target) and caller != target,
    "admin_delete": lambda caller, target: _role(caller) == "admin" and caller != target,
}


# --- Fixtures ------------------------------------------------------------------------------------------

@dataclass
class World:
    employees: dict[str, Employee]
    users: dict[str, User]
    departments: dict[str, Department]
    device: Device
    device_token: str
    people: dict[str, list[Path]]

    def client(self, caller: str) -> APIClient:
        client = APIClient()
        if caller == "device":
            client.credentials(HTTP_AUTHORIZATION=f"Device {self.device_token}")
        elif caller != "anonymous":
            client.force_login(self.users[caller])
        return client


@pytest.fixture()
def world(people) -> World:
    cache.clear()  # throttle counters of earlier tests
    departments = {name: Department.objects.create(name=f"Department {name}") for name in ("A", "B")}
    users, employees = {}, {}
    for name, (role, department) in PEOPLE.items():
        # Managers are staff too: the Django admin must still not let them reach anyone.
        users[name] = User.objects.create(username=name, is_staff=role != "employee")
        employees[name] = Employee.objects.create(biometric_consent_at=timezone.now(), user=users[name], code=name, full_name=f"Person {name}",
                                                  role=role, department=departments[department])
    # Admins and managers hold every model permission of the portal app: only the role decides.
    for name in ("admin", "manager_a", "manager_b"):
        users[name].user_permissions.set(Permission.objects.filter(content_type__app_label="portal"))
    device, token = device_create(name="Front door")
    return World(employees, users, departments, device, token, people)


_face_template: dict[str, Any] = {}


def give_face(world: World, employee: Employee, *, count: int = 1) -> list[FaceImage]:
    """Real faces for ``employee``: the first one in the session is enrolled through the pipeline,
    later ones reuse its stored detection, embedding and files (enrolment costs seconds)."""
    if not _face_template:
        face = face_enroll(employee=employee, data=world.people[PERSON][0].read_bytes())
        _face_template.update(
            fields={f.attname: getattr(face, f.attname) for f in FaceImage._meta.concrete_fields
                    if f.attname not in ("id", "employee_id", "image", "crop", "created_at", "created_by_id", "is_primary")},
            image=face.image.read(), crop=face.crop.read())
        face.image.close()
        face.crop.close()
        faces = [face]
    else:
        faces = []
    while len(faces) < count:
        fields = dict(_face_template["fields"], embedding=bytes(_face_template["fields"]["embedding"]))
        fields["content_hash"] = f"{fields['content_hash'][:56]}{len(faces):08d}"
        face = FaceImage(employee=employee, **fields)
        face.image.save("face.jpg", ContentFile(_face_template["image"]), save=False)
        face.crop.save("crop.jpg", ContentFile(_face_template["crop"]), save=False)
        face.save()
        faces.append(face)
    FaceImage.objects.filter(employee=employee).update(is_primary=False)
    gallery_changed()
    return faces


def state() -> dict[str, list]:
    """Everything a refused request must leave as it was."""
    return {
        "employees": sorted(Employee.objects.values_list("pk", "full_name", "role", "is_active", "department_id")),
        "faces": sorted(FaceImage.objects.values_list("pk", "employee_id", "is_primary")),
        "codes": sorted(EnrolmentCode.objects.values_list("pk", "employee_id")),
        "records": sorted(AttendanceRecord.objects.values_list("pk", "status", "corrected")),
        "erasures": sorted(ErasureRequest.objects.values_list("pk", "status")),
        "devices": sorted(Device.objects.values_list("pk", "name", "is_active", "token_hash")),
        "departments": sorted(Department.objects.values_list("pk", "name")),
    }


def photo(world: World, index: int = 0) -> io.BytesIO:
    handle = io.BytesIO(world.people[PERSON][index].read_bytes())
    handle.name = "photo.jpg"
    return handle


# --- Target actions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    surface: str  # "api", "page" or "admin"
    rule: str
    ok: int
    changes: bool
    needs: tuple[str, ...]
    send: Callable[[APIClient, World, Employee, dict[str, Any]], Any]
    pipeline: bool = False


def _new_role(target: Employee) -> str:
    return "manager" if target.role == "employee" else "employee"


TARGET_ACTIONS: dict[str, Action] = {
    "api_view": Action("api", "view", 200, False, (), lambda c, w, t, x: c.get(f"/api/v1/employees/{t.pk}")),
    "api_edit_profile": Action("api", "act", 200, True, (), lambda c, w, t, x: c.patch(
        f"/api/v1/employees/{t.pk}", {"full_name": "Renamed"}, format="json")),
    "api_deactivate": Action("api", "act", 200, True, (), lambda c, w, t, x: c.patch(
        f"/api/v1/employees/{t.pk}", {"is_active": False}, format="json")),
    "api_change_role": Action("api", "role", 200, True, (), lambda c, w, t, x: c.patch(
        f"/api/v1/employees/{t.pk}", {"role": _new_role(t)}, format="json")),
    "api_delete": Action("api", "delete", 204, True, (), lambda c, w, t, x: c.delete(f"/api/v1/employees/{t.pk}")),
    "api_face_upload": Action("api", "act", 201, True, (), lambda c, w, t, x: c.post(
        "/api/v1/faces", {"employee": t.pk, "image": photo(w)}, format="multipart"), pipeline=True),
    "api_face_primary": Action("api", "act", 200, True, ("faces",), lambda c, w, t, x: c.patch(
        f"/api/v1/faces/{x['faces'][1].pk}", {"is_primary": True}, format="json")),
    "api_face_delete": Action("api", "act", 204, True, ("faces",), lambda c, w, t, x: c.delete(
        f"/api/v1/faces/{x['faces'][0].pk}")),
    "api_enrolment_code": Action("api", "act", 201, True, (), lambda c, w, t, x: c.post(
        f"/api/v1/employees/{t.pk}/enrolment-code")),
    "api_verify": Action("api", "verify", 200, False, ("faces",), lambda c, w, t, x: c.post(
        "/api/v1/verify", {"employee": t.pk, "image": photo(w, 1)}, format="multipart"), pipeline=True),
    "page_gallery": Action("page", "view", 200, False, (), lambda c, w, t, x: c.get(f"/people/{t.pk}/faces/")),
    "page_face_upload": Action("page", "act", 302, True, (), lambda c, w, t, x: c.post(
        f"/people/{t.pk}/faces/", {"photo": photo(w)}), pipeline=True),
    "page_face_delete": Action("page", "act", 302, True, ("faces",), lambda c, w, t, x: c.post(
        f"/people/{t.pk}/faces/{x['faces'][0].pk}/delete/")),
    "page_face_primary": Action("page", "act", 302, True, ("faces",), lambda c, w, t, x: c.post(
        f"/people/{t.pk}/faces/{x['faces'][1].pk}/primary/")),
    "page_enrolment_code": Action("page", "act", 302, True, (), lambda c, w, t, x: c.post(
        f"/people/{t.pk}/enrolment-code/")),
    "page_erasure": Action("page", "act", 302, True, ("faces", "erasure"), lambda c, w, t, x: c.post(
        f"/people/{t.pk}/erase/{x['erasure'].pk}/")),
    "page_face_file": Action("page", "view", 200, False, ("faces",), lambda c, w, t, x: c.get(
        f"/faces/{x['faces'][0].pk}/crop/")),
    "page_history": Action("page", "report", 200, False, (), lambda c, w, t, x: c.get(f"/people/{t.pk}/attendance/")),
    "page_correct": Action("page", "act", 302, True, ("record",), lambda c, w, t, x: c.post(
        f"/records/{x['record'].pk}/correct/", {"reason": "forgot the badge", "status": "absent"})),
    "admin_change_page": Action("admin", "admin_site", 200, False, (), lambda c, w, t, x: c.get(
        f"/admin/portal/employee/{t.pk}/change/")),
    "admin_delete": Action("admin", "admin_delete", 302, True, (), lambda c, w, t, x: c.post(
        f"/admin/portal/employee/{t.pk}/delete/", {"post": "yes"})),
}


def refused_statuses(action: Action, caller: str, target: str) -> set[int]:
    if caller in ("anonymous", "device") or (action.surface == "admin" and _role(caller) != "admin"):
        # Not logged in (a device token opens no page and no people API): 401/403 from the API,
        # the login page otherwise; the admin site sends everyone but admins to its login.
        return {401, 403} if action.surface == "api" else {302}
    if action.surface == "admin":
        return {403}  # an admin refused on the admin site (deleting their own row)
    if not sees(caller, target):
        return {404}  # never confirm that someone one may not see exists
    return {403} if action.surface == "api" else {403, 404}


def _cells(actions: dict[str, Action], pipeline: bool) -> list[tuple[str, str, str]]:
    return [(name, caller, target) for name, action in actions.items() if action.pipeline is pipeline
            for caller in CALLERS for target in TARGETS if not (target == "self" and caller not in PEOPLE_CALLERS)]


def _run_cell(world: World, name: str, caller: str, target: str) -> None:
    action = TARGET_ACTIONS[name]
    target_name = caller if target == "self" else target
    employee = world.employees[target_name]
    extra: dict[str, Any] = {}
    if "faces" in action.needs:
        extra["faces"] = give_face(world, employee, count=2)
    if "erasure" in action.needs:
        extra["erasure"] = erasure_request_create(employee=employee, note="please")
    if "record" in action.needs:
        extra["record"] = AttendanceRecord.objects.create(employee=employee, date=timezone.localdate(), status="present")
    before = state()
    response = action.send(world.client(caller), world, employee, extra)
    if hasattr(response, "streaming_content"):
        response.close()
    allowed = caller in PEOPLE_CALLERS and RULES[action.rule](caller, target_name)
    after = state()
    if allowed:
        assert response.status_code == action.ok, (response.status_code, getattr(response, "content", b"")[:300])
        if action.changes:
            assert after != before, "an allowed change must be stored"
        else:
            assert after == before
    else:
        assert response.status_code in refused_statuses(action, caller, target_name), (
            response.status_code, getattr(response, "content", b"")[:300])
        assert after == before, "a refused request must change nothing"


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "caller", "target"), _cells(TARGET_ACTIONS, pipeline=False))
def test_target_action(world: World, action: str, caller: str, target: str) -> None:
    _run_cell(world, action, caller, target)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("action", "caller", "target"), _cells(TARGET_ACTIONS, pipeline=True))
def test_target_action_through_the_pipeline(world: World, action: str, caller: str, target: str) -> None:
    _run_cell(world, action, caller, target)


# --- Recognition answers name only people the caller may see ------------------------------------------

RECOGNITION_SURFACES = ["api_recognize", "page_recognize"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("surface", "caller", "target"), [
    (surface, caller, target) for surface in RECOGNITION_SURFACES for caller in CALLERS for target in TARGETS
    if not (target == "self" and caller not in PEOPLE_CALLERS)])
def test_recognition_names_only_visible_people(world: World, surface: str, caller: str, target: str) -> None:
    target_name = caller if target == "self" else target
    employee = world.employees[target_name]
    give_face(world, employee)
    client = world.client(caller)
    before = state()
    if surface == "api_recognize":
        response = client.post("/api/v1/recognize", {"image": photo(world, 1)}, format="multipart")
    else:
        response = client.post("/recognize/", {"photo": photo(world, 1)})
    assert state() == before
    if caller not in PEOPLE_CALLERS:
        assert response.status_code in ({401, 403} if surface == "api_recognize" else {302})
        return
    if _role(caller) == "employee":
        assert response.status_code == (403 if surface == "api_recognize" else 404)
        return
    assert response.status_code == 200
    if surface == "api_recognize":
        [face] = response.json()["faces"]
        named = face["employee"] == employee.full_name and face["employee_id"] == employee.pk
        assert named is sees(caller, target_name), face
        if not sees(caller, target_name):
            # Hidden people come back as unknown: nothing says "this person is enrolled".
            assert face["employee"] is None and face["employee_id"] is None and face["known"] is False
            assert face["similarity"] is None and face["distance"] is None
            assert all(match["employee_id"] != employee.pk for match in face["top"])
        else:
            assert face["known"] is True and face["similarity"] >= face["threshold"]
    else:
        page = response.content.decode()
        assert (employee.full_name in page) is sees(caller, target_name)
        assert ("similarity" in page) is sees(caller, target_name), page


# --- Actions without a target employee: creating people, departments, devices --------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("role", ["employee", "manager", "admin"])
@pytest.mark.parametrize("department", ["A", "B"])
def test_create_employee(world: World, caller: str, role: str, department: str) -> None:
    before = state()
    response = world.client(caller).post("/api/v1/employees", {
        "code": "NEW-1", "full_name": "New Person", "role": role,
        "department_id": world.departments[department].pk}, format="json")
    allowed = caller in PEOPLE_CALLERS and (
        _role(caller) == "admin" or (_role(caller) == "manager" and role == "employee" and PEOPLE[caller][1] == department))
    if allowed:
        assert response.status_code == 201, response.content
        assert Employee.objects.filter(code="NEW-1", role=role, department=world.departments[department]).exists()
    else:
        assert response.status_code in ({401, 403} if caller not in PEOPLE_CALLERS else {403}), response.content
        assert state() == before


ADMIN_ONLY = {
    "list_devices": (200, False, lambda c, w: c.get("/api/v1/devices")),
    "device_detail": (200, False, lambda c, w: c.get(f"/api/v1/devices/{w.device.pk}")),
    "create_device": (201, True, lambda c, w: c.post("/api/v1/devices", {"name": "Back door"}, format="json")),
    "deactivate_device": (200, True, lambda c, w: c.patch(f"/api/v1/devices/{w.device.pk}", {"is_active": False},
                                                          format="json")),
    "rotate_device_token": (200, True, lambda c, w: c.post(f"/api/v1/devices/{w.device.pk}/rotate-token")),
    "delete_device": (204, True, lambda c, w: c.delete(f"/api/v1/devices/{w.device.pk}")),
    "create_department": (201, True, lambda c, w: c.post("/api/v1/departments", {"name": "C"}, format="json")),
}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", list(ADMIN_ONLY))
def test_admin_only_action(world: World, caller: str, action: str) -> None:
    ok, changes, send = ADMIN_ONLY[action]
    before = state()
    response = send(world.client(caller), world)
    if caller == "admin":
        assert response.status_code == ok, response.content
        assert (state() != before) is changes
    else:
        assert response.status_code in ({401, 403} if caller not in PEOPLE_CALLERS else {403}), response.content
        assert state() == before



@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_department_list_and_the_camera_view(world: World, caller: str, settings) -> None:
    """Departments: admins list every one, anyone else their own. The monitor's camera view (every
    face at a door): admins only by default; every manager with ROLLCALL_CAMERA_VIEW=managers."""
    listed = world.client(caller).get("/api/v1/departments")
    if caller not in PEOPLE_CALLERS:
        assert listed.status_code in (401, 403)
    else:
        expected = ["Department A", "Department B"] if _role(caller) == "admin" else [f"Department {PEOPLE[caller][1]}"]
        assert sorted(d["name"] for d in listed.json()) == expected
    for camera_view in ("admins", "managers"):
        settings.ROLLCALL_CAMERA_VIEW = camera_view
        page = world.client(caller).get("/monitor/")
        if caller not in PEOPLE_CALLERS or _role(caller) == "employee":
            assert page.status_code in (302, 403, 404)
            continue
        offered = _role(caller) == "admin" or camera_view == "managers"
        assert page.status_code == 200 and ('id="preview"' in page.content.decode()) is offered


# --- The administration pages (/manage/): who opens and who writes ------------------------------------

ADMIN_ONLY_PAGES = {
    "departments_page": (200, False, lambda c, w: c.get("/manage/departments/")),
    "create_department_page": (302, True, lambda c, w: c.post("/manage/departments/", {"name": "C"})),
    "shifts_page": (200, False, lambda c, w: c.get("/manage/shifts/")),
    "create_shift_page": (302, True, lambda c, w: c.post("/manage/shifts/new/", {
        "name": "Day", "start": "09:00", "end": "17:00", "working_days": ["0", "1"], "late_grace_minutes": "10",
        "early_exit_grace_minutes": "10", "half_day_below_hours": "4", "absent_below_hours": "1",
        "checkout_after_end_minutes": "240"})),
    "holidays_page": (302, True, lambda c, w: c.post("/manage/holidays/", {"name": "Public"})),
    "devices_page": (200, False, lambda c, w: c.get("/manage/devices/")),
    "create_device_page": (200, True, lambda c, w: c.post("/manage/devices/", {"action": "create", "name": "Gate"})),
    "rotate_device_page": (200, True, lambda c, w: c.post("/manage/devices/", {"action": "rotate",
                                                                               "device": w.device.pk})),
}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", list(ADMIN_ONLY_PAGES))
def test_admin_only_manage_page(world: World, caller: str, action: str) -> None:
    from attendance.models import HolidayList, Shift

    def rules() -> tuple[int, int]:
        return Shift.objects.count(), HolidayList.objects.count()

    ok, changes, send = ADMIN_ONLY_PAGES[action]
    before, rules_before = state(), rules()
    response = send(world.client(caller), world)
    if caller == "admin":
        assert response.status_code == ok, response.content[:300]
        assert (state() != before or rules() != rules_before) is changes
    else:  # the login page for visitors and devices (a token opens no page), 403 for the rest
        assert response.status_code == (403 if caller in PEOPLE_CALLERS else 302)
        assert state() == before and rules() == rules_before


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_manage_people_page(world: World, caller: str) -> None:
    """Admins and managers open the people administration (managers see their department)."""
    response = world.client(caller).get("/manage/people/")
    if caller in ("admin", "manager_a", "manager_b"):
        assert response.status_code == 200
        assert ("Person employee_b" in response.content.decode()) is (caller in ("admin", "manager_b"))
    else:
        assert response.status_code == (403 if caller in PEOPLE_CALLERS else 302)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("target", ["admin", "manager_a2", "employee_a2", "employee_b"])
def test_manage_person_deactivate(world: World, caller: str, target: str) -> None:
    employee = world.employees[target]
    response = world.client(caller).post(f"/manage/people/{employee.pk}/active/")
    employee.refresh_from_db()
    # Nobody deactivates themselves from the administration (an admin would lock the site out).
    if caller in PEOPLE_CALLERS and acts(caller, target) and caller != target:
        assert response.status_code == 302 and not employee.is_active
    else:
        assert employee.is_active
        refused_with_a_message = caller not in PEOPLE_CALLERS or (caller == target and acts(caller, target))
        assert response.status_code in ({302} if refused_with_a_message else {403, 404})


# --- The gallery map: managers and admins, showing only the people they see ------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", ["/gallery/map/", "/gallery/map/data/"])
def test_gallery_map(world: World, caller: str, url: str) -> None:
    before = state()
    response = world.client(caller).get(url)
    assert state() == before
    if caller not in PEOPLE_CALLERS:
        assert response.status_code == 302  # to the login page
    elif _role(caller) == "employee":
        assert response.status_code == 404
    else:
        # The data is a map (200) or, while a worker builds it, pending (202); never a 403/404.
        assert response.status_code in ({200} if url == "/gallery/map/" else {200, 202}), response.content[:300]


# --- The nightly learning's page and actions: admins only ---------------------------------------------

def _learning_state() -> list:
    from recognition.models import LearningRun, ModelVersion

    return [sorted(LearningRun.objects.values_list("pk", "status")), sorted(ModelVersion.objects.values_list("pk", "state"))]


def _a_learning_run(world: World) -> int:
    from recognition.models import LearningRun

    return LearningRun.objects.create(status="finished", progress=1.0).pk


def _latest_run() -> int:
    from recognition.models import LearningRun

    return LearningRun.objects.latest("pk").pk


LEARNING = {  # action: (allowed status, changes, send)
    "learning_page": (200, False, lambda c, w: c.get("/learning/")),
    "learning_progress": (200, False, lambda c, w: c.get(f"/learning/runs/{_latest_run()}/progress/")),
    "learning_run_now": (302, True, lambda c, w: c.post("/learning/run/")),
    "learning_rollback": (302, True, lambda c, w: c.post("/learning/rollback/")),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", list(LEARNING))
def test_learning_action(world: World, caller: str, action: str, settings) -> None:
    from recognition.models import ModelVersion

    settings.ROLLCALL_DETACHED_JOBS = False  # Run now's job finishes inside the request: nothing outlives the test

    if action == "learning_rollback":
        parent = ModelVersion.objects.create(version="v1", embedder="x", embedder_version="y", state="retired")
        ModelVersion.objects.create(version="v2", embedder="x", embedder_version="y", state="active", parent=parent)
    ok, changes, send = LEARNING[action]
    client = world.client(caller)
    if action == "learning_progress":
        _a_learning_run(world)
    before = _learning_state()
    response = send(client, world)
    after = _learning_state()
    if caller == "admin":
        assert response.status_code == ok, response.content[:300]
        assert (after != before) is changes
    else:
        expected = {302} if caller not in PEOPLE_CALLERS else ({403} if _role(caller) == "manager" else {404})
        assert response.status_code in expected, response.status_code
        if response.status_code == 302:
            assert "/accounts/login/" in response["Location"]
        assert after == before


# --- A superuser's login is an admin, whatever its employee row's role says ---------------------------

@pytest.mark.django_db
def test_a_manager_cannot_act_on_a_superuser_whose_employee_row_says_employee(world: World) -> None:
    target = world.employees["employee_a2"]
    User.objects.filter(pk=target.user_id).update(is_superuser=True)
    manager = world.client("manager_a")
    assert manager.patch(f"/api/v1/employees/{target.pk}", {"full_name": "Owned"}, format="json").status_code in {403, 404}
    response = manager.post(f"/manage/people/{target.pk}/", {
        "code": target.code, "full_name": "Owned", "department": target.department_id, "role": "employee",
        "is_active": "on", "password": "Hijacked-pass-123"})
    assert response.status_code in {403, 404}
    assert manager.post(f"/manage/people/{target.pk}/active/").status_code in {403, 404}
    assert manager.delete(f"/api/v1/employees/{target.pk}").status_code in {403, 404}
    target.refresh_from_db()
    user = User.objects.get(pk=target.user_id)
    assert target.full_name == "Person employee_a2" and target.is_active and not user.check_password("Hijacked-pass-123")
    # The admin still acts on them.
    assert world.client("admin").patch(f"/api/v1/employees/{target.pk}", {"full_name": "Renamed"},
                                       format="json").status_code == 200
