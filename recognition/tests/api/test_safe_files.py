"""Safe files: stored names and served types come from the decoded image, every page carries the
CSP, exports neutralise formulas, /api/docs/ runs under the CSP with Swagger UI from the sidecar."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from openpyxl import load_workbook
from PIL import Image
from rest_framework.test import APIClient

from attendance.models import AttendanceRecord
from portal.models import Department, Employee
from recognition.models import FaceImage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture()
def boss() -> Employee:
    team = Department.objects.create(name="Team")
    user = User.objects.create_user("boss", password="pw-boss-safe-files")
    return Employee.objects.create(user=user, code="B", full_name="Boss", role="manager", department=team)


def test_a_face_uploaded_as_html_is_stored_and_served_as_the_image_it_is(boss, people) -> None:
    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana", department=boss.department)
    png = io.BytesIO()
    Image.open(people["kit_harington"][0]).save(png, format="PNG")
    upload = io.BytesIO(png.getvalue())
    upload.name = "x" * 240 + ".html"
    api = APIClient()
    api.force_authenticate(boss.user)
    response = api.post("/api/v1/faces", {"employee": ana.pk, "image": upload}, format="multipart")
    assert response.status_code == 201, response.content
    face = FaceImage.objects.get(pk=response.json()["id"])
    assert face.image.name.endswith(".png") and "html" not in face.image.name and len(face.image.name) < 100
    page = Client()
    page.force_login(boss.user)
    for kind, media_type in (("image", "image/png"), ("crop", "image/png")):
        served = page.get(f"/faces/{face.pk}/{kind}/")
        assert served.status_code == 200
        assert served["Content-Type"] == media_type
        assert served["X-Content-Type-Options"] == "nosniff"
        assert re.fullmatch(rf'inline; filename="face-{face.pk}(-crop)?\.png"', served["Content-Disposition"])
        # An image's own policy: no script at all, a sandbox; the viewer's inline styles only.
        assert served["Content-Security-Policy"].startswith("default-src 'none'"), served["Content-Security-Policy"]
        assert "sandbox" in served["Content-Security-Policy"] and "script" not in served["Content-Security-Policy"]
    assert page.get(f"/faces/{face.pk}/other/").status_code == 404


def test_a_stored_file_that_is_not_an_image_is_never_rendered(boss, people) -> None:
    """A file planted before this fix (an old upload kept its .html) is sent as a download."""
    from django.core.files.base import ContentFile

    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana", department=boss.department)
    face = FaceImage(employee=ana, content_hash="x" * 64, embedding=b"", embedder="e", embedder_version="1",
                     detection_score=1, box=[0, 0, 1, 1], face_size=1, sharpness=1)
    face.image.save("old.html", ContentFile(b"<script>alert(1)</script>"), save=False)
    face.crop.save("crop.png", ContentFile(b"<svg onload=alert(1)>"), save=False)
    face.save()
    page = Client()
    page.force_login(boss.user)
    served = page.get(f"/faces/{face.pk}/image/")
    assert served["Content-Type"] == "application/octet-stream"
    assert served["Content-Disposition"] == f'attachment; filename="face-{face.pk}.bin"'
    assert served["X-Content-Type-Options"] == "nosniff"


def test_every_page_has_a_csp_without_inline_script(boss, people) -> None:
    page = Client()
    page.force_login(boss.user)
    Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana", department=boss.department)
    for url in ("/", "/me/", "/recognize/", "/reports/today/", "/reports/month/", "/kiosk/", "/monitor/",
                f"/people/{boss.pk}/faces/", "/api/docs/", "/accounts/login/", "/accounts/face-login/"):
        response = page.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"].startswith("default-src 'self'"), url
        assert "unsafe-inline" not in response["Content-Security-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"
        html = response.content.decode()
        # No inline script, handler or style: every <script> has a src, no on*= attributes, no <style>.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"\son[a-z]+\s*=", html), url
        assert "<style" not in html and " style=" not in html, url
    docs = page.get("/api/docs/").content.decode()
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    script = re.search(r'<script src="([^"]*\?script=?)"', docs)
    assert script, docs
    assert page.get(script.group(1)).status_code == 200


def test_api_errors_are_json_for_unknown_urls_missing_objects_and_methods(boss) -> None:
    api = APIClient()
    api.force_authenticate(boss.user)
    for method, url, status in (("get", "/api/v1/nothing-here", 404), ("get", "/api/v1/employees/999999", 404),
                                ("get", f"/api/v1/employees/{2**64}", 404), ("put", "/api/v1/employees", 405),
                                ("get", "/api/elsewhere", 404)):
        response = getattr(api, method)(url)
        assert response.status_code == status, url
        assert response["Content-Type"] == "application/json" and response.json()["code"], url
    no_boundary = api.post("/api/v1/faces", data=b"--x\r\n", content_type="multipart/form-data")
    assert no_boundary.status_code == 400 and no_boundary.json()["code"] == "parse_error"


def test_exports_neutralise_formulas(boss) -> None:
    for index, name in enumerate(("=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2", "@SUM(A1)", "\tTab", "\rCR")):
        employee = Employee.objects.create(biometric_consent_at=timezone.now(), code=f"E{index}", full_name=name, department=boss.department)
        AttendanceRecord.objects.create(employee=employee, date=timezone.localdate(), status="present")
    page = Client()
    page.force_login(boss.user)
    day = timezone.localdate().isoformat()
    rows = list(csv.reader(io.StringIO(page.get(f"/reports/export.csv?from={day}&to={day}").content.decode())))
    names = [row[0] for row in rows[1:] if row[0] not in ("Total", "Boss")]
    assert names and all(name.startswith("'") for name in names), names
    book = load_workbook(io.BytesIO(page.get(f"/reports/export.xlsx?from={day}&to={day}").content))
    cells = [row[1] for row in book["Days"].iter_rows(min_row=2, values_only=True) if row[1] != "Boss"]
    assert cells and all(isinstance(c, str) and c.startswith("'") for c in cells), cells
    assert all(cell.data_type != "f" for sheet in book for row in sheet.iter_rows() for cell in row)
    api = APIClient()
    api.force_authenticate(boss.user)
    api_csv = api.get(f"/api/v1/attendance/records?export=csv&from={day}&to={day}").content.decode()
    assert "\n=HYPERLINK" not in api_csv and ",=HYPERLINK" not in api_csv and "'=HYPERLINK" in api_csv


def test_signed_in_pages_and_faces_are_not_cached_and_secrets_never_ride_in_a_cookie(boss, people) -> None:
    """A shared kiosk browser keeps no manager page, export or face after logout (``no-store``);
    a flash message (a device token, an enrolment code) is kept in the session, not a cookie."""
    from recognition.services import face_enroll

    ana = Employee.objects.create(biometric_consent_at=timezone.now(), code="A", full_name="Ana",
                                  department=boss.department)
    face = face_enroll(employee=ana, data=people["kit_harington"][0].read_bytes())
    client = Client()
    client.force_login(boss.user)
    for url in ("/", "/reports/today/", f"/people/{ana.pk}/attendance/", "/reports/export.csv",
                f"/faces/{face.pk}/image/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], url
    code = client.post(f"/people/{ana.pk}/enrolment-code/")
    assert code.status_code == 302
    assert "messages" not in code.cookies or not code.cookies["messages"].value
    page = client.get(code["Location"])
    assert "Enrolment code for Ana" in page.content.decode()
