"""The published API contract, tested by an independent schema-driven client (schemathesis).

Every operation of ``/api/schema/`` is called with generated requests, authenticated as each role
(admin, manager, employee, device token). Each answer must be no server error, and its status
code, content type, headers and body must be ones the schema documents. Examples per operation
are bounded and derandomised (ROLLCALL_CONTRACT_EXAMPLES, default 10) so the run is repeatable
and takes a few minutes on two cores.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portal.models import Department, Employee
from portal.services import device_create

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("ROLLCALL_CONTRACT_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
ROLES = ["admin", "manager", "employee", "device"]

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture(params=ROLES)
def auth_headers(request: pytest.FixtureRequest) -> dict[str, str]:
    """An organisation (two departments, one person of each role, a device) and the caller's header."""
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    tokens = {}
    for username, role, department in [("admin", "admin", None), ("manager", "manager", sales),
                                       ("employee", "employee", sales), ("other", "employee", ops)]:
        user = User.objects.create_user(username, password=f"pw-{username}-contract")
        Employee.objects.create(user=user, code=username.upper(), full_name=username.title(), department=department,
                                role=role)
        tokens[username] = f"Token {Token.objects.create(user=user).key}"
    _, device_token = device_create(name="door", location="hall")
    tokens["device"] = f"Device {device_token}"
    return {"Authorization": tokens[request.param]}


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented(case: schemathesis.Case, auth_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=auth_headers, checks=CHECKS)
