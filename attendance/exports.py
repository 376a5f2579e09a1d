"""CSV and XLSX exports: the month sheet as the page shows it (``sheet_csv``, ``sheet_xlsx``), and
the API's list of records (``records_csv``, one row per record)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

from attendance.models import AttendanceRecord
from attendance.selectors import TOTAL_LABELS, TOTAL_LETTERS, MonthSheet
from portal.models import Department
from portal.templatetags.rollcall import hours_minutes

COLUMNS = ["date", "employee_code", "employee", "department", "status", "first_in", "last_out", "worked_hours",
           "late", "early_exit", "missing_checkout", "corrected"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` in a name) gets a
    leading ``'``, so it shows as the text it is; numbers, booleans and dates pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def record_rows(records: Iterable[AttendanceRecord]) -> Iterable[list[object]]:
    def local(value):
        return timezone.localtime(value).strftime("%H:%M") if value else ""

    for r in records:
        row = [r.date.isoformat(), r.employee.code, r.employee.full_name,
               r.employee.department.name if r.employee.department else "", r.get_status_display(),
               local(r.first_in), local(r.last_out), round(r.worked_seconds / 3600, 2),
               r.late, r.early_exit, r.missing_checkout, r.corrected]
        yield [safe_cell(value) for value in row]


def records_csv(records: Iterable[AttendanceRecord]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(record_rows(records))
    return buffer.getvalue().encode()


def records_xlsx(records: Iterable[AttendanceRecord]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Attendance"
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in record_rows(records):
        sheet.append(row)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _sheet_header(sheet: MonthSheet) -> list[str]:
    return ["Employee", "Code", "Department", *[day.isoformat() for day in sheet.days],
            *[TOTAL_LABELS[letter] for letter in TOTAL_LETTERS], "Worked (h:mm)"]


def sheet_csv(sheet: MonthSheet) -> bytes:
    """The month sheet as on the page: a row per person in scope (with or without records), a column
    per day (the status letter), the day totals and hours worked as h:mm, and a Total row summing
    exact seconds. Text that a spreadsheet would run as a formula is neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_sheet_header(sheet))
    for row in sheet.rows:
        employee = row.employee
        writer.writerow([safe_cell(value) for value in [
            employee.full_name, employee.code, employee.department.name if employee.department else "",
            *row.letters, *[row.totals[letter] for letter in TOTAL_LETTERS], hours_minutes(row.worked_seconds)]])
    totals = sheet.totals
    writer.writerow(["Total", "", "", *[""] * len(sheet.days), *[totals[letter] for letter in TOTAL_LETTERS],
                     hours_minutes(sheet.worked_seconds)])
    return buffer.getvalue().encode()


def _local(value: dt.datetime | None) -> dt.time | None:
    return timezone.localtime(value).time().replace(microsecond=0, tzinfo=None) if value else None


def sheet_xlsx(sheet: MonthSheet, *, department: Department | None = None) -> bytes:
    """The month sheet as a workbook: "Sheet" (as on the page, with totals), "Days" (one row per
    person and day with typed dates, check-in/out times in the site's zone and durations shown as
    ``[h]:mm``) and "About" (period, department, time zone)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold, head_fill = Font(bold=True), PatternFill("solid", fgColor="F1F5F9")
    zone = settings.TIME_ZONE
    book = Workbook()

    grid = book.active
    grid.title = "Sheet"
    grid.append(["Employee", "Code", "Department", *sheet.days, *[TOTAL_LABELS[letter] for letter in TOTAL_LETTERS],
                 "Worked (h:mm)"])
    first_day_col, last_day_col = 4, 3 + len(sheet.days)
    for cell in grid[1]:
        cell.font, cell.fill = bold, head_fill
        cell.alignment = Alignment(horizontal="center", wrap_text=True)
    for col in range(first_day_col, last_day_col + 1):
        grid.cell(row=1, column=col).number_format = "d mmm"
        grid.column_dimensions[get_column_letter(col)].width = 6.5
    # Rows and the last column are counted here: openpyxl's max_row scans every cell, which made
    # a 1,000-person month quadratic (minutes).
    worked_col, line = last_day_col + len(TOTAL_LETTERS) + 1, 1
    for row in sheet.rows:
        employee = row.employee
        grid.append([safe_cell(employee.full_name), safe_cell(employee.code),
                     safe_cell(employee.department.name if employee.department else ""), *row.letters,
                     *[row.totals[letter] for letter in TOTAL_LETTERS], dt.timedelta(seconds=row.worked_seconds)])
        line += 1
        grid.cell(row=line, column=worked_col).number_format = "[h]:mm"
    totals = sheet.totals
    grid.append(["Total", None, None, *[None] * len(sheet.days), *[totals[letter] for letter in TOTAL_LETTERS],
                 dt.timedelta(seconds=sheet.worked_seconds)])
    line += 1
    for cell in grid[line]:
        cell.font = bold
    grid.cell(row=line, column=worked_col).number_format = "[h]:mm"
    grid.column_dimensions["A"].width = 24
    grid.column_dimensions["C"].width = 16
    grid.freeze_panes = grid.cell(row=2, column=first_day_col)

    days = book.create_sheet("Days")
    days.append(["Date", "Employee", "Code", "Department", "Status", f"In ({zone})", f"Out ({zone})",
                 "Worked (h:mm)", "Late", "Left early", "No check-out", "Corrected"])
    for cell in days[1]:
        cell.font, cell.fill = bold, head_fill
    line = 1
    for row in sheet.rows:
        employee = row.employee
        for cell in row.cells:
            record = cell.record
            days.append([cell.day, safe_cell(employee.full_name), safe_cell(employee.code),
                         safe_cell(employee.department.name if employee.department else ""),
                         record.get_status_display() if record else "",
                         _local(record.first_in) if record else None, _local(record.last_out) if record else None,
                         dt.timedelta(seconds=record.worked_seconds) if record else None,
                         *[("yes" if record and getattr(record, flag) else "")
                           for flag in ("late", "early_exit", "missing_checkout", "corrected")]])
            line += 1
            days.cell(row=line, column=1).number_format = "d mmm yyyy"
            days.cell(row=line, column=6).number_format = "hh:mm"
            days.cell(row=line, column=7).number_format = "hh:mm"
            days.cell(row=line, column=8).number_format = "[h]:mm"
    for letter, width in zip("ABCDEFGH", (13, 24, 10, 16, 12, 14, 14, 14), strict=True):
        days.column_dimensions[letter].width = width
    days.freeze_panes = "C2"

    about = book.create_sheet("About")
    for entry in (("Report", "Attendance"), ("From", sheet.days[0]), ("To", sheet.days[-1]),
                 ("Department", safe_cell(department.name) if department else "All the exporter may see"),
                 ("Time zone", zone), ("Exported at", timezone.localtime().replace(tzinfo=None, microsecond=0)),
                 ("Letters", "P present · L late · H half day · A absent · V on leave · O holiday · • in progress")):
        about.append(list(entry))
    about["B2"].number_format = about["B3"].number_format = "d mmm yyyy"
    about["B6"].number_format = "d mmm yyyy hh:mm"
    about.column_dimensions["A"].width, about.column_dimensions["B"].width = 14, 40
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
