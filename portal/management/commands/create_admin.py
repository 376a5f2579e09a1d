"""Create the first RollCall admin: a login and an employee with the role admin, who may use every
portal page, the administration under /manage/ and the Django admin (/admin/).

    python manage.py create_admin --username alice --code A-001 --name "Alice Admin"

The password is asked for interactively, or read from the environment variable named by
--password-env (for scripts). Running it again for an existing login makes that login's employee
an admin (and sets the password when one is given).
"""

from __future__ import annotations

import getpass
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.models import Employee
from portal.services import employee_create, employee_update


class Command(BaseCommand):
    help = "Create (or promote) a RollCall admin: a login plus an employee with the role admin."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--code", default="", help="employee code (default: the username)")
        parser.add_argument("--name", default="", help="full name (default: the username)")
        parser.add_argument("--password-env", default="",
                            help="read the password from this environment variable instead of asking")

    def _password(self, env: str, interactive: bool) -> str:
        if env:
            value = os.environ.get(env, "")
            if not value:
                raise CommandError(f"The environment variable {env} is empty or unset.")
            return value
        if not interactive:
            return ""
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return first

    def handle(self, *args, username: str, code: str, name: str, password_env: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        password = self._password(password_env, interactive=user is None or not user.has_usable_password())
        if password:
            try:
                validate_password(password, user=user)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
        with transaction.atomic():
            if user is None:
                if Employee.objects.filter(code=code or username).exists():
                    raise CommandError(f"An employee with the code {code or username!r} exists; pass another --code.")
                employee = employee_create(code=code or username, full_name=name or username, role=Employee.Role.ADMIN,
                                           username=username, password=password)
                user = employee.user
                action = "created"
            else:
                employee = Employee.objects.filter(user=user).first()
                if employee is None:
                    employee = employee_create(code=code or username, full_name=name or username,
                                               role=Employee.Role.ADMIN)
                    employee_update(employee=employee, user=user)
                else:
                    employee_update(employee=employee, role=Employee.Role.ADMIN, is_active=True)
                if password:
                    user.set_password(password)
                action = "promoted"
            # Staff so that Django's own admin login form lets them in too (RollCall admins get
            # every model permission from portal.backends.RollCallAdminBackend).
            user.is_staff = True
            user.is_active = True
            user.save()
        self.stdout.write(f"Admin {username!r} {action}: sign in at /accounts/login/, then Manage (/manage/) "
                          f"and the Django admin (/admin/).")
