"""Role-aware navigation: each role sees only the links it may open and every one of them answers
200; pages refuse with a styled 403/404 page, while /api/ keeps answering JSON."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.models import Department, Employee

pytestmark = pytest.mark.django_db

MANAGER_LINKS = {"People", "Me", "Today", "Month", "Monitor", "Recognise", "Gallery map", "Kiosk", "Manage"}
ADMIN_ONLY_LINKS = {"Devices", "API docs", "Admin"}


def _client(role: str | None, *, superuser: bool = False) -> Client:
    team = Department.objects.get_or_create(name="Team")[0]
    user = User.objects.create_user(f"user-{role}-{superuser}", password="pw-nav-12345", is_superuser=superuser)
    if role is not None:
        Employee.objects.create(user=user, code=f"C-{role}", full_name=f"{role} person", role=role, department=team)
    client = Client()
    client.force_login(user)
    return client


def _nav(html: str) -> dict[str, str]:
    nav = re.search(r'<nav [^>]*aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    return {label: href for href, label in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav)}


@pytest.mark.parametrize(("role", "superuser", "expected"), [
    ("employee", False, {"People", "Me"}),
    ("manager", False, MANAGER_LINKS),
    ("admin", False, MANAGER_LINKS | ADMIN_ONLY_LINKS),
    (None, True, (MANAGER_LINKS - {"Me"}) | ADMIN_ONLY_LINKS),  # a superuser without an employee
])
def test_each_role_sees_only_links_that_open(role: str | None, superuser: bool, expected: set[str]) -> None:
    client = _client(role, superuser=superuser)
    links = _nav(client.get("/").content.decode())
    assert set(links) - {"Learning"} == expected, links
    for label, href in links.items():
        response = client.get(href)
        assert response.status_code == 200, (label, href, response.status_code)
        html = response.content.decode()
        if '<nav aria-label="Main">' in html:  # the kiosk is full-screen, the admin has its own header
            assert f'<a href="{href}" aria-current="page">' in html, (label, href)


def test_not_found_and_forbidden_pages_are_styled_and_the_api_stays_json() -> None:
    client = _client("employee")
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode() and 'aria-label="Main"' in missing.content.decode()
    assert client.get("/reports/month/").status_code == 404  # reports are hidden from employees
    forbidden = client.get("/manage/")
    assert forbidden.status_code == 403 and "You may not open this page" in forbidden.content.decode()
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    anonymous = Client().get("/no/such/page/")
    assert anonymous.status_code == 404 and "Page not found" in anonymous.content.decode()
