"""CSV and XLSX exports of attendance records (one row per employee and day)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from django.utils import timezone

from attendance.models import AttendanceRecord

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
