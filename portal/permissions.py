"""Who may see what. One place for the rules used by pages and the API.

Admins (and superusers) see everyone; managers see the employees of their own department;
employees see only themselves.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from portal.models import Employee


def employee_of(user: AbstractBaseUser | AnonymousUser) -> Employee | None:
    if not user.is_authenticated:
        return None
    return Employee.objects.filter(user=user).select_related("department").first()


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    employee = employee_of(user)
    return employee is not None and employee.role == Employee.Role.ADMIN


def is_manager(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Managers and admins."""
    if is_admin(user):
        return True
    employee = employee_of(user)
    return employee is not None and employee.role == Employee.Role.MANAGER


def visible_employees(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Employee]:
    """The employees whose records and faces ``user`` may see."""
    if is_admin(user):
        return Employee.objects.all()
    employee = employee_of(user)
    if employee is None:
        return Employee.objects.none()
    if employee.role == Employee.Role.MANAGER and employee.department_id is not None:
        return Employee.objects.filter(department_id=employee.department_id)
    return Employee.objects.filter(pk=employee.pk)
