"""Employee self-service: my attendance and photos; a deletion request a manager carries out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from attendance.services import attendance_check
from conftest import earlier_today
from portal.models import Department, Employee
from recognition.models import ErasureRequest, FaceImage
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def test_employee_sees_own_history_requests_erasure_and_manager_carries_it_out(people) -> None:
    team = Department.objects.create(name="Sales")
    ana_user = User.objects.create_user("ana")
    ana = Employee.objects.create(user=ana_user, code="A", full_name="Ana Example", department=team)
    boss_user = User.objects.create_user("boss")
    Employee.objects.create(user=boss_user, code="M", full_name="Boss", department=team, role="manager")
    face_enroll(employee=ana, data=people["joe_biden"][0].read_bytes())
    attendance_check(employee=ana, at=earlier_today(dt.timedelta(hours=3)))
    me = Client()
    me.force_login(ana_user)
    page = me.get("/me/").content.decode()
    assert "Ana Example" in page and "In progress" in page  # today's record, checked in earlier today
    assert "my enrolled face 1" in page
    page = me.post("/me/", {"note": "I am leaving"}, follow=True).content.decode()
    assert "was sent to your manager" in page and "you asked for your photos to be deleted".lower() in page.lower()
    request = ErasureRequest.objects.get(employee=ana, status="pending")
    me.post("/me/", {"note": "again"})
    assert ErasureRequest.objects.filter(employee=ana).count() == 1  # one pending request at a time
    assert me.post(f"/people/{ana.pk}/erase/{request.pk}/").status_code == 404  # employees cannot carry it out
    boss = Client()
    boss.force_login(boss_user)
    assert "I am leaving" in boss.get(f"/people/{ana.pk}/faces/").content.decode()
    done = boss.post(f"/people/{ana.pk}/erase/{request.pk}/", follow=True).content.decode()
    assert "1 photo deleted" in done
    assert FaceImage.objects.filter(employee=ana).count() == 0
    assert [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()] == []
    request.refresh_from_db()
    assert request.status == "done" and request.handled_by == boss_user


def test_a_login_without_an_employee_gets_404() -> None:
    client = Client()
    client.force_login(User.objects.create_user("orphan"))
    assert client.get("/me/").status_code == 404
