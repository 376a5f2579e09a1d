"""Who may do what. The one place for the rules; pages, the API, the admin and the websockets
ask these questions and never re-derive them.

Seeing (``may_view``, ``visible_employees``): admins (and superusers) see everyone; managers
see the employees of their own department (and themselves); employees see only themselves.

Acting (``may_edit``, ``may_manage_faces``, ``may_issue_enrolment_code``, ``may_correct_attendance``):
admins act on everyone; a manager acts only on employees of their own department whose role is
*employee* — never on a manager, an admin (a superuser's login counts as one, whatever its
employee row's role) or themselves; employees act on nothing. Only admins
change roles, departments, devices and use the Django admin site.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from portal.models import Department, Employee

User = AbstractBaseUser | AnonymousUser


def employee_of(user: User) -> Employee | None:
    if not user.is_authenticated:
        return None
    return Employee.objects.filter(user=user).select_related("department").first()


def is_admin(user: User) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    employee = employee_of(user)
    return employee is not None and employee.is_active and employee.role == Employee.Role.ADMIN


def is_manager(user: User) -> bool:
    """Managers and admins."""
    if is_admin(user):
        return True
    employee = employee_of(user)
    return employee is not None and employee.is_active and employee.role == Employee.Role.MANAGER


def visible_employees(user: User) -> QuerySet[Employee]:
    """The employees whose records and faces ``user`` may see."""
    if is_admin(user):
        return Employee.objects.all()
    employee = employee_of(user)
    if employee is None:
        return Employee.objects.none()
    if employee.role == Employee.Role.MANAGER and employee.is_active and employee.department_id is not None:
        return Employee.objects.filter(department_id=employee.department_id)
    return Employee.objects.filter(pk=employee.pk)


def visible_departments(user: User) -> QuerySet[Department]:
    """The departments ``user`` may list: admins every one; anyone else their own (if any)."""
    if is_admin(user):
        return Department.objects.all()
    employee = employee_of(user)
    if employee is None or not employee.is_active or employee.department_id is None:
        return Department.objects.none()
    return Department.objects.filter(pk=employee.department_id)


def manageable_employees(user: User) -> QuerySet[Employee]:
    """The employees ``user`` may act on (edit, deactivate, delete, faces, codes, corrections)."""
    if is_admin(user):
        return Employee.objects.all()
    me = employee_of(user)
    if me is None or not me.is_active or me.role != Employee.Role.MANAGER or me.department_id is None:
        return Employee.objects.none()
    # A superuser's login is an admin whatever its employee row's role says: never a manager's to act on.
    return (Employee.objects.filter(department_id=me.department_id, role=Employee.Role.EMPLOYEE)
            .exclude(pk=me.pk).exclude(user__is_superuser=True))


# --- Questions about one target ----------------------------------------------------------------

def may_view(actor: User, target: Employee) -> bool:
    return visible_employees(actor).filter(pk=target.pk).exists()


def may_edit(actor: User, target: Employee) -> bool:
    """Change the profile or the active flag, or delete the employee."""
    if is_admin(actor):
        return True
    me = employee_of(actor)
    return (
        me is not None and me.is_active and me.role == Employee.Role.MANAGER and me.department_id is not None
        and target.pk != me.pk and target.role == Employee.Role.EMPLOYEE and target.department_id == me.department_id
        and not (target.user_id is not None and target.user.is_superuser)
    )


def may_delete(actor: User, target: Employee) -> bool:
    """Delete ``target`` (their faces, history and login go with them): as ``may_edit``, but never
    one's own row (an admin would lock themselves out)."""
    return may_edit(actor, target) and not (actor.is_authenticated and target.user_id == actor.pk)


def may_change_role(actor: User, target: Employee, role: str) -> bool:
    """Giving ``target`` the role ``role``: admins only (keeping the current role is no change)."""
    return role == target.role or is_admin(actor)


def may_place_in_department(actor: User, department_id: int | None) -> bool:
    """Creating an employee in, or moving one to, ``department_id``: admins anywhere; managers
    only into their own department."""
    if is_admin(actor):
        return True
    me = employee_of(actor)
    return is_manager(actor) and me is not None and me.department_id is not None and department_id == me.department_id


def may_create_employee(actor: User, *, department_id: int | None, role: str) -> bool:
    if is_admin(actor):
        return True
    return role == Employee.Role.EMPLOYEE and may_place_in_department(actor, department_id)


def may_manage_faces(actor: User, target: Employee) -> bool:
    """Upload, mark primary or delete photos of ``target``, carry out their erasure request."""
    return may_edit(actor, target)


def may_issue_enrolment_code(actor: User, target: Employee) -> bool:
    return may_manage_faces(actor, target)


def may_correct_attendance(actor: User, target: Employee) -> bool:
    """Correct ``target``'s attendance records (managers: their department's employees, not themselves)."""
    return may_edit(actor, target)


def may_verify(actor: User, target: Employee) -> bool:
    """1:1 verification against ``target``'s photos: managers and admins for people they see,
    everyone for themselves."""
    if is_manager(actor):
        return may_view(actor, target)
    me = employee_of(actor)
    return me is not None and me.pk == target.pk


def may_face_login_as(target: Employee) -> bool:
    """Face login is possible only for an active employee who opted in (on their own /me/ page)."""
    return target.is_active and target.face_login and target.user_id is not None


# --- Questions without a target ------------------------------------------------------------------

def may_recognize(actor: User) -> bool:
    """Run 1:N recognition or detection on an uploaded photo (answers name only visible people)."""
    return is_manager(actor)


def may_view_reports(actor: User) -> bool:
    return is_manager(actor)


def may_view_cameras(actor: User) -> bool:
    """The monitor's live camera view shows every face at a door, whatever their department:
    admins only, unless ``ROLLCALL_CAMERA_VIEW=managers`` opens it to every manager."""
    return cameras_for(admin=is_admin(actor), manager=is_manager(actor))


def cameras_for(*, admin: bool, manager: bool) -> bool:
    """``may_view_cameras`` for a caller whose roles are already known (the monitor socket)."""
    return admin or (manager and settings.ROLLCALL_CAMERA_VIEW == "managers")


def may_view_gallery_map(actor: User) -> bool:
    """The gallery map (every visible person's photos in 2D): managers and admins; it shows only
    the people ``visible_employees`` gives them."""
    return is_manager(actor)


def may_manage_departments(actor: User) -> bool:
    return is_admin(actor)


def may_manage_devices(actor: User) -> bool:
    return is_admin(actor)


def may_manage_shifts(actor: User) -> bool:
    """Shifts, shift assignments, holiday lists and holidays (they decide lateness and absence)."""
    return is_admin(actor)


def may_manage_people(actor: User) -> bool:
    """Open the people administration (/manage/people/): admins for everyone, managers for the
    employees of their own department (each change still asks may_edit / may_create_employee)."""
    return is_manager(actor)


def may_use_kiosk_page(actor: User) -> bool:
    """The kiosk page in a logged-in browser works for managers (a device-token kiosk needs no login)."""
    return is_manager(actor)


def session_user_now(session_key: str | None, user_pk: int) -> User | None:
    """The user a long-lived socket's session still stands for: None once it was signed out or
    expired, or its user deactivated (Django's own checks: a changed password ends the session).
    Read afresh from the session store (a socket's copy was loaded when it connected); nothing is
    saved."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.conf import settings
    from django.contrib import auth

    engine = import_module(settings.SESSION_ENGINE)
    user = auth.get_user(SimpleNamespace(session=engine.SessionStore(session_key)))
    return user if user.is_authenticated and user.pk == user_pk else None


def kiosk_session_still_valid(session_key: str | None, user_pk: int) -> bool:
    """A kiosk socket's manager session is still what it was when the socket opened (see
    ``session_user_now``) and still allowed the kiosk page."""
    user = session_user_now(session_key, user_pk)
    return user is not None and may_use_kiosk_page(user)


def may_manage_learning(actor: User) -> bool:
    """See the nightly learning (its runs, figures and model versions), run it now, roll it back: admins only."""
    return is_admin(actor)


def may_use_admin_site(actor: User) -> bool:
    """The Django admin reaches every row (users, passwords, roles): RollCall admins only (role
    admin or superuser), staff flag or not; portal.authentication.RollCallAdminBackend gives them
    every model permission there."""
    return bool(actor.is_authenticated and actor.is_active and is_admin(actor))


def has_admin_model_permission(actor: User) -> bool:
    """Model permissions (Django admin): a RollCall admin holds all of them."""
    return is_admin(actor)


RECORDED_CHECK_IN_OUTCOMES = frozenset({"checked_in", "checked_out", "repeated"})


def check_in_answer_for(actor: User, answer: dict, *, device: bool) -> dict:
    """What a check-in answer (REST or websocket, fresh or a key's stored answer) may tell its
    caller. A recorded outcome keeps its greeting: the person is at the kiosk. An answer in which
    nothing was recorded (liveness_failed, unknown) names no one and shows no similarity unless
    the caller may see that employee; a device (a kiosk, not a person) never sees them there
    (its hint stays, nameless). For unknown the similarity is the closest enrolled person's, whom
    only an admin may see."""
    if answer.get("outcome") in RECORDED_CHECK_IN_OUTCOMES:
        return answer
    employee_id = answer.get("employee_id")
    if device:
        visible = False
    elif employee_id is None:
        visible = is_admin(actor)
    else:
        visible = visible_employees(actor).filter(pk=employee_id).exists()
    if visible:
        return answer
    return {**answer, "employee_id": None, "employee": None, "similarity": None}


def recognition_names(actor: User) -> dict[int, str]:
    """Employee id -> name for the people a recognition answer may name to ``actor``."""
    return dict(visible_employees(actor).values_list("pk", "full_name"))
