"""Pages of the face gallery: per-employee gallery (upload from file or webcam, delete, mark
primary), permission-checked face images, and a recognise-a-photo form."""

from __future__ import annotations

import base64
import io
from typing import NoReturn

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from portal.http import image_response
from portal.models import Employee
from portal.permissions import (
    is_manager,
    may_issue_enrolment_code,
    may_manage_faces,
    may_recognize,
    recognition_names,
    visible_employees,
)
from recognition import workers
from recognition.models import ErasureRequest, FaceImage
from recognition.pipeline.errors import PipelineError
from recognition.selectors import learned_photos_in_use
from recognition.serializers_out import recognized_for
from recognition.services import enrolment_code_issue, erasure_request_carry_out, face_delete, face_set_primary


@login_required
@require_GET
def face_file(request: HttpRequest, pk: int, kind: str) -> FileResponse:
    """The original photo or the aligned crop, only for users allowed to see that employee."""
    face = get_object_or_404(FaceImage, pk=pk, employee__in=visible_employees(request.user))
    if kind not in ("image", "crop"):
        raise Http404
    field = face.crop if kind == "crop" else face.image
    return image_response(field, name=f"face-{face.pk}{'-crop' if kind == 'crop' else ''}",
                          cache_control="private, no-store")


def _managed(request: HttpRequest, pk: int) -> Employee:
    """The employee whose photos the caller may manage: 404 if not visible, 403 if only visible."""
    employee = get_object_or_404(visible_employees(request.user), pk=pk)
    if not may_manage_faces(request.user, employee):
        _refuse(request)
    return employee


def _refuse(request: HttpRequest) -> NoReturn:
    """Employees never see the manager pages' actions (404); a manager outside their reach, 403."""
    if not is_manager(request.user):
        raise Http404
    raise PermissionDenied


@login_required
def gallery(request: HttpRequest, pk: int) -> HttpResponse:
    """One employee's enrolled photos; managers add (file or webcam), delete and mark primary."""
    employee = get_object_or_404(visible_employees(request.user), pk=pk)
    manager = may_manage_faces(request.user, employee)
    if request.method == "POST":
        if not manager:
            _refuse(request)
        return _gallery_add(request, employee)
    pending = employee.erasure_requests.filter(status=ErasureRequest.Status.PENDING).first()
    faces = list(employee.faces.all())
    in_use = learned_photos_in_use()
    for face in faces:  # a learned photo the active version does not hold is only kept for a rollback
        face.kept_for_rollback = face.source == FaceImage.Source.LEARNED and face.pk not in in_use
    return render(request, "recognition/gallery.html",
                  {"employee": employee, "faces": faces, "manager": manager, "pending": pending})


def _gallery_add(request: HttpRequest, employee: Employee) -> HttpResponse:
    """Add the posted photo. A form post gets a message and a redirect; the webcam's fetch (it asks
    for JSON) gets the new photo's card, or the quality gate's reason with a 400."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    webcam = request.POST.get("source") == "webcam"
    upload = request.FILES.get("photo")
    if upload is None:
        detail = "Choose a photo or take one with the camera."
        if wants_json:
            return JsonResponse({"code": "no_photo", "detail": detail}, status=400)
        messages.error(request, detail)
        return redirect("gallery", pk=employee.pk)
    try:
        face = workers.enroll(employee=employee, data=upload.read(), filename=upload.name or "webcam.jpg",
                              source=FaceImage.Source.WEBCAM if webcam else FaceImage.Source.UPLOAD,
                              created_by=request.user)
    except PipelineError as exc:
        if wants_json:
            return JsonResponse({"code": exc.code, "detail": f"Photo not added: {exc.detail}"}, status=400)
        messages.error(request, f"Photo not added: {exc.detail}")
        return redirect("gallery", pk=employee.pk)
    detail = "Photo added; it is used for recognition from now on."
    if wants_json:
        count = employee.faces.count()
        card = render_to_string("recognition/_face.html", {"f": face, "employee": employee, "manager": True,
                                                           "number": count, "fresh": True}, request=request)
        return JsonResponse({"face_id": face.pk, "detail": detail, "html": card, "count": count}, status=201)
    messages.success(request, detail)
    return redirect("gallery", pk=employee.pk)


@login_required
@require_POST
def gallery_erase(request: HttpRequest, pk: int, request_pk: int) -> HttpResponse:
    """Carry out an employee's request: every photo, crop and embedding is deleted."""
    employee = _managed(request, pk)
    erasure = get_object_or_404(ErasureRequest, pk=request_pk, employee=employee, status=ErasureRequest.Status.PENDING)
    count = erasure_request_carry_out(request=erasure, handled_by=request.user)
    messages.success(request, f"{count} photo{'s' if count != 1 else ''} deleted at {employee.full_name}'s request.")
    return redirect("gallery", pk=employee.pk)


@login_required
@require_POST
def gallery_delete(request: HttpRequest, pk: int, face_pk: int) -> HttpResponse:
    employee = _managed(request, pk)
    face_delete(face=get_object_or_404(FaceImage, pk=face_pk, employee=employee), removed_by=request.user)
    messages.success(request, "Photo deleted, with its crop and embedding.")
    return redirect("gallery", pk=employee.pk)


@login_required
@require_POST
def gallery_primary(request: HttpRequest, pk: int, face_pk: int) -> HttpResponse:
    employee = _managed(request, pk)
    face_set_primary(face=get_object_or_404(FaceImage, pk=face_pk, employee=employee))
    return redirect("gallery", pk=employee.pk)


@login_required
def recognize_page(request: HttpRequest) -> HttpResponse:
    """Upload a photo and see who is in it (managers and admins)."""
    if not may_recognize(request.user):
        raise Http404
    context: dict[str, object] = {}
    if request.method == "POST":
        upload = request.FILES.get("photo")
        if upload is None:
            context["error"] = "Choose a photo to upload."
        else:
            data = upload.read()
            try:
                results = workers.recognize(data=data)
            except PipelineError as exc:
                context["error"] = exc.detail
            else:
                # Names only of people this caller may see; anyone else is not recognised, with no
                # similarity that would tell the caller they are enrolled.
                names = recognition_names(request.user)
                shown = [recognized_for(r, names) for r in results]
                context["results"] = [
                    {**r, "employee": {"full_name": names[r["employee_id"]]} if r["employee_id"] in names else None}
                    for r in shown]
                context["picture"] = _annotated_picture(data, context["results"])
    return render(request, "recognition/recognize.html", context)


PICTURE_SIDE = 960  # the longer side of the photo shown back on the recognise page


def _annotated_picture(data: bytes, results: list[dict]) -> dict[str, object]:
    """The uploaded photo, scaled down, as a data: URL (it is never stored), with each face's box
    and label in the scaled picture's pixels, for the SVG drawn over it."""
    from PIL import Image

    from recognition.services import decode_upload

    image = Image.fromarray(decode_upload(data))  # the same orientation the detector saw
    scale = min(1.0, PICTURE_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    boxes = []
    for number, r in enumerate(results, start=1):
        x1, y1, x2, y2 = (v * scale for v in r["box"])
        name = r["employee"]["full_name"] if r["known"] and r["employee"] else "Not recognised"
        label = f"{number}. {name}" + (f" {r['similarity']:.2f}" if r.get("similarity") is not None else "")
        boxes.append({"x": round(x1, 1), "y": round(y1, 1), "w": round(x2 - x1, 1), "h": round(y2 - y1, 1),
                      "label": label, "known": r["known"], "text_y": round(max(y1 - 6, 14), 1),
                      "stroke": max(2, round(image.width / 240))})
    return {"src": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode(), "width": image.width,
            "height": image.height, "boxes": boxes, "font": max(12, round(image.width / 40))}


@login_required
@require_POST
def gallery_enrolment_code(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue a one-time code for enrolment at a door device; shown once, on the next page."""
    employee = get_object_or_404(visible_employees(request.user), pk=pk)
    if not may_issue_enrolment_code(request.user, employee):
        _refuse(request)
    try:
        entry, code = enrolment_code_issue(employee=employee, issued_by=request.user)
    except PipelineError as exc:
        messages.error(request, f"No enrolment code: {exc.detail}")
        return redirect("gallery", pk=employee.pk)
    messages.success(request, f"Enrolment code for {employee.full_name}: {code} "
                              f"(valid until {timezone.localtime(entry.expires_at):%H:%M}, once).")
    return redirect("gallery", pk=employee.pk)
