"""Manager reports on a seeded fortnight: monthly sheet letters and totals, today board, CSV/XLSX."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import User
from django.test import Client
from openpyxl import load_workbook

from attendance.models import Shift, ShiftAssignment
from attendance.services import attendance_check, attendance_close_day
from portal.models import Department, Employee

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture()
def seeded(settings) -> dict[str, object]:
    settings.TIME_ZONE = "UTC"
    sales, ops = Department.objects.create(name="Sales"), Department.objects.create(name="Ops")
    shift = Shift.objects.create(name="Day", start=dt.time(9), end=dt.time(17), working_days=[0, 1, 2, 3, 4])
    for team in (sales, ops):
        ShiftAssignment.objects.create(shift=shift, department=team, valid_from=dt.date(2026, 1, 1))
    ana = Employee.objects.create(code="A", full_name="Ana", department=sales)
    bob = Employee.objects.create(code="B", full_name="Bob", department=sales)
    olga = Employee.objects.create(code="O", full_name="Olga", department=ops)
    for times in ([at(2, 8, 55), at(2, 17)], [at(3, 9, 30), at(3, 17)], [at(4, 9), at(4, 11)]):
        for t in times:
            attendance_check(employee=ana, at=t)
    attendance_check(employee=bob, at=at(2, 9, 40))
    attendance_check(employee=bob, at=at(2, 17))
    attendance_check(employee=olga, at=at(2, 9))
    for day in (2, 3, 4):
        attendance_close_day(day=dt.date(2026, 11, day))
    user = User.objects.create_user("boss")
    Employee.objects.create(user=user, code="M", full_name="Boss", department=sales, role="manager")
    client = Client()
    client.force_login(user)
    return {"client": client, "ana": ana, "bob": bob}


def test_month_sheet_letters_totals_and_department_scope(seeded) -> None:
    page = seeded["client"].get("/reports/month/?month=2026-11").content.decode()
    assert "Olga" not in page  # another department
    from attendance.selectors import month_sheet

    sheet = month_sheet(User.objects.get(username="boss"), year=2026, month=11)
    rows = {row.employee.full_name: row for row in sheet.rows}
    assert rows["Ana"].letters[1:4] == ["P", "L", "H"] and rows["Ana"].totals["L"] == 1 and rows["Ana"].totals["H"] == 1
    assert rows["Bob"].letters[1:4] == ["L", "A", "A"] and rows["Bob"].totals["A"] == 2
    assert rows["Ana"].worked_hours == round((485 + 450 + 120) / 60, 2)
    # due = people with a record that day (Boss joined after these days were closed)
    assert sheet.daily_rate[1] == 1.0 and sheet.daily_rate[2] == 0.5
    assert dict(sheet.weekly_late)["W45"] == 2
    assert "Attendance rate per day" in page and "<svg" in page


def test_csv_and_xlsx_exports_are_the_month_sheet(seeded) -> None:
    client = seeded["client"]
    Employee.objects.create(code="N", full_name="Nina New", department=Department.objects.get(name="Sales"))
    response = client.get("/reports/export.csv?month=2026-11")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response["Content-Type"].startswith("text/csv")
    # every person in scope (Nina has no record), then a Total row; Olga is in Ops
    assert [r["Employee"] for r in rows] == ["Ana", "Bob", "Boss", "Nina New", "Total"]
    ana = rows[0]
    assert [ana[f"2026-11-0{d}"] for d in (2, 3, 4)] == ["P", "L", "H"] and ana["2026-11-30"] == ""
    assert ana["Late"] == "1" and ana["Worked (h:mm)"] == "17:35"  # 8:05 + 7:30 + 2:00
    assert rows[-1]["Worked (h:mm)"] == "24:55" and rows[-1]["Absent"] == "2"  # Bob: 7:20 on the 2nd
    book = load_workbook(io.BytesIO(client.get("/reports/export.xlsx?month=2026-11").content))
    assert book.sheetnames == ["Sheet", "Days", "About"]
    grid = book["Sheet"]
    header = [c.value for c in grid[1]]
    assert header[:3] == ["Employee", "Code", "Department"] and header[3].date() == dt.date(2026, 11, 1)
    assert header[-1] == "Worked (h:mm)" and grid.max_row == 6
    worked = grid.cell(row=2, column=grid.max_column)
    assert worked.value == dt.timedelta(hours=17, minutes=35) and worked.number_format == "[h]:mm"
    total = grid.cell(row=6, column=grid.max_column)
    assert grid.cell(row=6, column=1).value == "Total" and total.value == dt.timedelta(hours=24, minutes=55)
    days = book["Days"]
    assert [c.value for c in days[1]][:8] == ["Date", "Employee", "Code", "Department", "Status", "In (UTC)",
                                              "Out (UTC)", "Worked (h:mm)"]
    assert days.max_row == 1 + 4 * 30
    late = next(r for r in days.iter_rows(min_row=2) if r[1].value == "Ana" and r[0].value.date() == dt.date(2026, 11, 3))
    assert late[4].value == "Late" and late[5].value == dt.time(9, 30) and late[5].number_format == "hh:mm"
    assert late[7].value == dt.timedelta(hours=7, minutes=30) and late[8].value == "yes"
    assert ["Time zone", "UTC"] in [[c.value for c in r] for r in book["About"].iter_rows()]
    assert client.get("/reports/export.csv?from=yesterday").status_code == 400


def test_department_filtered_export_has_its_people(seeded) -> None:
    client = seeded["client"]
    sales = Department.objects.get(name="Sales")
    rows = list(csv.reader(io.StringIO(client.get(f"/reports/export.csv?month=2026-11&department={sales.pk}").content.decode())))
    assert [r[0] for r in rows[1:]] == ["Ana", "Bob", "Boss", "Total"]
    response = client.get(f"/reports/export.xlsx?from=2026-11-02&to=2026-11-04&department={sales.pk}")
    assert "sales" in response["Content-Disposition"]
    grid = load_workbook(io.BytesIO(response.content))["Sheet"]
    assert [grid.cell(row=n, column=1).value for n in range(2, 6)] == ["Ana", "Bob", "Boss", "Total"]
    assert [grid.cell(row=2, column=c).value for c in (4, 5, 6)] == ["P", "L", "H"]
    month = client.get(f"/reports/month/?month=2026-11&department={sales.pk}").content.decode()
    assert f"/reports/export.xlsx?month=2026-11&amp;department={sales.pk}" in month


def test_month_page_reads_well(seeded) -> None:
    page = seeded["client"].get("/reports/month/?month=2026-11").content.decode()
    ana = seeded["ana"]
    assert f'href="/people/{ana.pk}/attendance/?from=2026-11-01&amp;to=2026-11-30">Ana</a>' in page
    assert ">17:35</td>" in page and ">24:55</td>" in page  # h:mm rows and a footer of exact seconds
    assert "100 %" in page and "day of month" in page  # the chart has axes
    empty = seeded["client"].get("/reports/month/?month=2026-10").content.decode()
    assert "No attendance recorded in October 2026 yet." in empty


def test_today_board_and_who_may_see_reports(seeded, settings) -> None:
    from attendance.selectors import today_board

    ana, bob = seeded["ana"], seeded["bob"]
    attendance_check(employee=ana, at=at(9, 9, 20))
    attendance_check(employee=bob, at=at(9, 8, 50))
    attendance_check(employee=bob, at=at(9, 12))
    board = today_board(User.objects.get(username="boss"), day=dt.date(2026, 11, 9))
    assert [r.employee.full_name for r in board.inside] == ["Ana"]
    assert [r.employee.full_name for r in board.left] == ["Bob"]
    assert [r.employee.full_name for r in board.late] == ["Ana"]
    assert [e.full_name for e in board.not_yet_in] == ["Boss"]
    assert seeded["client"].get("/reports/today/").status_code == 200
    employee = User.objects.create_user("ana-user")
    Employee.objects.filter(pk=ana.pk).update(user=employee)
    plain = Client()
    plain.force_login(employee)
    for url in ("/reports/today/", "/reports/month/", "/reports/export.csv"):
        assert plain.get(url).status_code == 404


def test_records_api_filters_pages_scopes_and_csv(seeded) -> None:
    from rest_framework.test import APIClient

    boss = APIClient()
    boss.force_authenticate(User.objects.get(username="boss"))
    body = boss.get("/api/v1/attendance/records?from=2026-11-01&to=2026-11-30").json()
    assert body["count"] == 6 and {r["employee"] for r in body["results"]} == {"Ana", "Bob"}
    only_ana = boss.get(f"/api/v1/attendance/records?from=2026-11-03&to=2026-11-03&employee={seeded['ana'].pk}").json()
    assert [(r["date"], r["status"]) for r in only_ana["results"]] == [("2026-11-03", "late")]
    as_csv = boss.get("/api/v1/attendance/records?from=2026-11-01&to=2026-11-30&export=csv")
    assert as_csv["Content-Type"] == "text/csv" and len(as_csv.content.decode().strip().splitlines()) == 7
    bad = boss.get("/api/v1/attendance/records?from=soon")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    # The same period rule as the web export: forward, and at most a year.
    for period in ("from=0001-01-01&to=9999-12-31&export=csv", "from=2026-12-01&to=2026-11-01",
                   "from=2025-11-28&to=2026-11-30"):
        refused = boss.get(f"/api/v1/attendance/records?{period}")
        assert refused.status_code == 400 and refused.json()["code"] == "invalid", period
    assert boss.get("/api/v1/attendance/records?from=2025-11-30&to=2026-11-30").status_code == 200
    ana_user = User.objects.create_user("ana-user")
    Employee.objects.filter(pk=seeded["ana"].pk).update(user=ana_user)
    ana = APIClient()
    ana.force_authenticate(ana_user)
    mine = ana.get("/api/v1/attendance/records?from=2026-11-01&to=2026-11-30").json()
    assert mine["count"] == 3 and {r["employee"] for r in mine["results"]} == {"Ana"}
    assert APIClient().get("/api/v1/attendance/records").status_code in (401, 403)


def test_employee_history_and_a_correction_through_the_pages(seeded) -> None:
    from attendance.models import AttendanceCorrection, AttendanceRecord

    client, ana = seeded["client"], seeded["ana"]
    page = client.get(f"/people/{ana.pk}/attendance/?from=2026-11-01&to=2026-11-30").content.decode()
    assert "1 late" in page and "1 half day" in page and page.count("correct</a>") == 3
    record = AttendanceRecord.objects.get(employee=ana, date=dt.date(2026, 11, 4))
    missing_reason = client.post(f"/records/{record.pk}/correct/", {"last_out": "17:00", "reason": ""})
    assert "needs a reason" in missing_reason.content.decode()
    for value in ("17:00+05:00", "T17", "17", "25:00"):  # an offset was silently dropped before
        refused = client.post(f"/records/{record.pk}/correct/", {"last_out": value, "reason": "left"})
        assert "must be a time like 09:05" in refused.content.decode(), value
    too_long = client.post(f"/records/{record.pk}/correct/", {"last_out": "17:00", "reason": "x" * 1001})
    assert "at most 1000 characters" in too_long.content.decode()
    record.refresh_from_db()
    assert not record.corrected
    client.post(f"/records/{record.pk}/correct/", {"last_out": "17:00", "reason": "forgot to check out after lunch"})
    record.refresh_from_db()
    assert record.status == "present" and record.worked_seconds == 8 * 3600 and record.corrected
    audit = AttendanceCorrection.objects.get(record=record)
    assert audit.before["status"] == "half_day" and audit.changed_by.username == "boss"
    assert "forgot to check out" in client.get(f"/records/{record.pk}/correct/").content.decode()
    olga_record = AttendanceRecord.objects.filter(employee__full_name="Olga").first()
    assert client.get(f"/records/{olga_record.pk}/correct/").status_code == 404  # another department


def test_month_sheet_api(seeded) -> None:
    from rest_framework.test import APIClient

    boss = APIClient()
    boss.force_authenticate(User.objects.get(username="boss"))
    body = boss.get("/api/v1/attendance/month?month=2026-11").json()
    ana = next(e for e in body["employees"] if e["name"] == "Ana")
    assert body["month"] == "2026-11" and len(body["days"]) == 30 and ana["letters"][1:4] == ["P", "L", "H"]
    assert {"week": "W45", "late": 2} in body["weekly_late"] and "Olga" not in [e["name"] for e in body["employees"]]
    assert boss.get("/api/v1/attendance/month?month=2026-13").status_code == 400
    employee = APIClient()
    employee.force_authenticate(User.objects.create_user("someone"))
    assert employee.get("/api/v1/attendance/month").status_code == 403


def test_month_navigation_at_the_ends_of_the_calendar(seeded) -> None:
    client = seeded["client"]
    december = client.get("/reports/month/?month=2026-12").content.decode()
    assert "?month=2026-11" in december and "?month=2027-01" in december
    for edge in ("9999-12", "0001-01"):
        assert client.get(f"/reports/month/?month={edge}").status_code == 200
        assert client.get(f"/reports/export.xlsx?month={edge}").status_code == 200


def test_pages_and_exports_use_the_site_time_zone_and_one_format(seeded, settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in November
    client, ana = seeded["client"], seeded["ana"]
    history = client.get(f"/people/{ana.pk}/attendance/?from=2026-11-01&to=2026-11-30").content.decode()
    assert "10:30" in history and "09:30" not in history and "Times are in Europe/Berlin." in history
    assert "1 Nov – 30 Nov 2026" in history  # one date format: "30 Nov 2026"
    book = load_workbook(io.BytesIO(client.get("/reports/export.xlsx?month=2026-11").content))
    header = [c.value for c in book["Days"][1]]
    assert header[5:7] == ["In (Europe/Berlin)", "Out (Europe/Berlin)"]
    late = next(r for r in book["Days"].iter_rows(min_row=2, values_only=True)
                if r[1] == "Ana" and r[0].date() == dt.date(2026, 11, 3))
    assert late[5] == dt.time(10, 30) and late[6] == dt.time(18, 0)
    monitor = client.get("/monitor/").content.decode()
    assert 'data-time-zone="Europe/Berlin"' in monitor
    assert 'data-time-zone="Europe/Berlin"' in client.get("/kiosk/").content.decode()


def test_the_history_offers_correct_only_where_the_viewer_may_correct(seeded) -> None:
    """A manager may not correct their own days: their own history shows no "correct" link (each
    would answer 403), an employee of theirs still does."""
    from attendance.models import AttendanceRecord

    client = seeded["client"]
    boss = Employee.objects.get(code="M")
    attendance_check(employee=boss, at=at(2, 9))
    attendance_close_day(day=dt.date(2026, 11, 2))
    record = AttendanceRecord.objects.get(employee=boss, date=dt.date(2026, 11, 2))
    own = client.get(f"/people/{boss.pk}/attendance/?from=2026-11-01&to=2026-11-30").content.decode()
    assert "correct</a>" not in own and client.get(f"/records/{record.pk}/correct/").status_code == 403
    theirs = client.get(f"/people/{seeded['ana'].pk}/attendance/?from=2026-11-01&to=2026-11-30").content.decode()
    assert theirs.count("correct</a>") == 3
