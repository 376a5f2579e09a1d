"""Employee edits through the REST API and the manage pages: a taken code is a 400, a deactivated
employee loses their login and token (and gets them back when reactivated), and unauthenticated
API calls are told to authenticate (401 with WWW-Authenticate)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Department, Employee
from portal.services import EmployeeCodeTaken, employee_create, employee_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture()
def org() -> dict[str, Employee]:
    sales = Department.objects.create(name="Sales")
    people = {}
    for username, role in [("admin", "admin"), ("boss", "manager"), ("ana", "employee"), ("bob", "employee")]:
        user = User.objects.create_user(username, password="pw-" + username + "-long")
        people[username] = Employee.objects.create(user=user, code=username.upper(), full_name=username.title(),
                                                   department=sales, role=role)
    return people


def _token_client(username: str) -> APIClient:
    token, _ = Token.objects.get_or_create(user=User.objects.get(username=username))
    return APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")


def test_patching_a_code_another_employee_has_is_a_field_error(org) -> None:
    response = _token_client("admin").patch(f"/api/v1/employees/{org['ana'].pk}", {"code": "BOB"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"code": "invalid", "detail": {"code": ["An employee with this code exists."]}}
    assert Employee.objects.get(pk=org["ana"].pk).code == "ANA"
    assert _token_client("admin").patch(f"/api/v1/employees/{org['ana'].pk}", {"code": "ANA-2"},
                                        format="json").json()["code"] == "ANA-2"


def test_the_service_turns_a_unique_clash_into_employee_code_taken(org) -> None:
    """The race: no check ahead of the write, the database's unique index decides."""
    with pytest.raises(EmployeeCodeTaken):
        employee_update(employee=Employee.objects.get(pk=org["ana"].pk), code="BOB")
    assert Employee.objects.get(pk=org["ana"].pk).code == "ANA"


def test_creating_with_a_taken_code_leaves_nothing_half_written(org) -> None:
    """Two creations racing for one code: the unique index decides, the loser's login is rolled back."""
    with pytest.raises(EmployeeCodeTaken):
        employee_create(code="BOB", full_name="Another Bob", username="bob2", password="pw-bob2-long")
    assert not User.objects.filter(username="bob2").exists()
    response = _token_client("admin").post("/api/v1/employees", {"code": "ANA", "full_name": "Ana Again"},
                                           format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"code": "invalid", "detail": {"code": ["An employee with this code exists."]}}
    assert Employee.objects.filter(code="ANA").count() == 1


def test_a_deactivated_employee_can_neither_log_in_nor_use_their_token(org) -> None:
    ana_api = _token_client("ana")
    session = Client()
    assert session.login(username="ana", password="pw-ana-long")
    assert ana_api.get("/api/v1/employees").status_code == 200
    assert _token_client("admin").patch(f"/api/v1/employees/{org['ana'].pk}", {"is_active": False},
                                        format="json").status_code == 200
    assert User.objects.get(username="ana").is_active is False
    refused = ana_api.get("/api/v1/employees")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    assert not Client().login(username="ana", password="pw-ana-long")
    assert session.get("/me/").status_code == 302  # the open session ends too
    login_page = Client().post("/accounts/login/", {"username": "ana", "password": "pw-ana-long"})
    assert login_page.status_code == 200 and "_auth_user_id" not in login_page.client.session
    # Reactivated (on the manage page this time): the login and the token work again.
    admin = Client()
    admin.force_login(User.objects.get(username="admin"))
    assert admin.post(f"/manage/people/{org['ana'].pk}/active/", {"active": "on"}).status_code == 302
    assert User.objects.get(username="ana").is_active is True
    assert ana_api.get("/api/v1/employees").status_code == 200
    assert Client().login(username="ana", password="pw-ana-long")


def test_the_manage_page_deactivation_ends_the_login(org) -> None:
    admin = Client()
    admin.force_login(User.objects.get(username="admin"))
    response = admin.post(f"/manage/people/{org['bob'].pk}/active/", {"active": ""})
    assert response.status_code in (302, 303), response.status_code
    assert Employee.objects.get(pk=org["bob"].pk).is_active is False
    assert User.objects.get(username="bob").is_active is False
    assert _token_client("bob").get("/api/v1/employees").status_code == 401



def test_the_django_admin_deactivation_ends_the_login_too(org) -> None:
    """The Django admin's change form saves through employee_update, like the manage pages."""
    bob = org["bob"]
    admin = Client()
    admin.force_login(User.objects.get(username="admin"))
    response = admin.post(f"/admin/portal/employee/{bob.pk}/change/", {
        "user": bob.user_id, "code": bob.code, "full_name": bob.full_name, "department": bob.department_id or "",
        "role": bob.role, "faces-TOTAL_FORMS": "0", "faces-INITIAL_FORMS": "0", "faces-MIN_NUM_FORMS": "0",
        "faces-MAX_NUM_FORMS": "1000"})  # is_active left unticked
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Employee.objects.get(pk=bob.pk).is_active is False
    assert User.objects.get(username="bob").is_active is False
    assert _token_client("bob").get("/api/v1/employees").status_code == 401

@pytest.mark.parametrize("authorization", [None, "Token not-a-real-token", "Token", "Device wrong-token"])
def test_unauthenticated_api_calls_get_401_with_www_authenticate(org, authorization: str | None) -> None:
    client = APIClient(HTTP_AUTHORIZATION=authorization) if authorization else APIClient()
    for path in ("/api/v1/employees", "/api/v1/departments"):
        response = client.get(path)
        assert response.status_code == 401, (path, response.status_code, response.content)
        assert response["WWW-Authenticate"] in ("Token", "Device")
        assert response.json()["code"] in ("not_authenticated", "authentication_failed")


def test_the_pages_session_still_authenticates_the_api(org) -> None:
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="boss", password="pw-boss-long")
    assert client.get("/api/v1/employees").status_code == 200
    # A write with the session alone still needs the CSRF token (SessionAuthentication's rule).
    assert client.patch(f"/api/v1/employees/{org['ana'].pk}", {"full_name": "X"}, format="json").status_code == 403


def test_deleting_an_employee_ends_their_login_token_and_sessions(org) -> None:
    bob_token = _token_client("bob")
    assert bob_token.get("/api/v1/employees").status_code == 200
    session = Client()
    assert session.login(username="bob", password="pw-bob-long")
    response = _token_client("boss").delete(f"/api/v1/employees/{org['bob'].pk}")
    assert response.status_code == 204, response.content
    assert bob_token.get("/api/v1/employees").status_code == 401
    assert session.get("/me/").status_code == 302  # the open session is signed out
    assert not Client().login(username="bob", password="pw-bob-long")
    assert not Token.objects.filter(user__username="bob").exists()


def test_a_new_password_on_ones_own_row_keeps_this_session_and_ends_the_others(org) -> None:
    here, elsewhere = Client(), Client()
    assert here.login(username="admin", password="pw-admin-long")
    assert elsewhere.login(username="admin", password="pw-admin-long")
    admin = org["admin"]
    response = here.post(f"/manage/people/{admin.pk}/", {
        "code": admin.code, "full_name": admin.full_name, "department": admin.department_id, "role": "admin",
        "is_active": "on", "username": "admin", "password": "a-New-long-pass-77"})
    assert response.status_code == 302, response.content[:2000]
    assert here.get("/manage/people/").status_code == 200  # still signed in here
    assert elsewhere.get("/manage/people/").status_code == 302  # the other browser is signed out
    assert Client().login(username="admin", password="a-New-long-pass-77")


def test_a_taken_login_name_with_a_password_gets_one_clear_error(org) -> None:
    from portal.forms import EmployeeForm

    form = EmployeeForm({"code": "NEW", "full_name": "New Person", "role": "employee", "is_active": "on",
                         "username": "bob", "password": "a-Long-pass-99"}, employee=None)
    assert not form.is_valid()
    assert form.errors["username"] == ["This login name is taken."], form.errors
