"""Pages of the face gallery: permission-checked face images, and a recognise-a-photo form."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from portal.models import Employee
from portal.permissions import is_manager, visible_employees
from recognition.models import FaceImage
from recognition.pipeline.errors import PipelineError
from recognition.services import face_recognize


@login_required
@require_GET
def face_file(request: HttpRequest, pk: int, kind: str) -> FileResponse:
    """The original photo or the aligned crop, only for users allowed to see that employee."""
    face = get_object_or_404(FaceImage, pk=pk, employee__in=visible_employees(request.user))
    field = face.crop if kind == "crop" else face.image
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("The image file is missing.") from None
    response = FileResponse(handle)
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
def recognize_page(request: HttpRequest) -> HttpResponse:
    """Upload a photo and see who is in it (managers and admins)."""
    if not is_manager(request.user):
        raise Http404
    context: dict[str, object] = {}
    if request.method == "POST":
        upload = request.FILES.get("photo")
        if upload is None:
            context["error"] = "Choose a photo to upload."
        else:
            try:
                results = face_recognize(data=upload.read())
            except PipelineError as exc:
                context["error"] = exc.detail
            else:
                names = Employee.objects.in_bulk([r.best.label for r in results if r.best])
                context["results"] = [
                    {
                        "box": [round(v) for v in r.face.box],
                        "known": r.known,
                        "employee": names.get(r.best.label) if r.best else None,
                        "score": r.best.score if r.best else None,
                        "threshold": r.threshold,
                    }
                    for r in results
                ]
    return render(request, "recognition/recognize.html", context)
