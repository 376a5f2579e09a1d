"""Serving stored images safely: the media type comes from the decoded file, never from its name."""

from __future__ import annotations

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404

from recognition.pipeline.image import format_media_type, format_suffix, image_format


def image_response(field: FieldFile, *, name: str, cache_control: str) -> FileResponse:
    """``field``'s file with the type of its decoded format, ``nosniff`` and an inline, generated
    file name (``<name>.<suffix of the format>``). A file that is not an image RollCall reads is
    sent as an ``application/octet-stream`` attachment, so a browser never renders it."""
    try:
        handle = field.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The image file is missing.") from None
    fmt = image_format(handle)
    handle.seek(0)
    disposition = "inline" if fmt is not None else "attachment"
    response = FileResponse(handle, content_type=format_media_type(fmt))
    response["Content-Disposition"] = f'{disposition}; filename="{name}.{format_suffix(fmt)}"'
    response["X-Content-Type-Options"] = "nosniff"
    # Opened on its own, the browser's image viewer styles the page inline: allowed here, and
    # nothing else (no script, a sandbox), so a file that is not what it claims can do nothing.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = cache_control
    return response
