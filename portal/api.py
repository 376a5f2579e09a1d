"""API plumbing shared by every app: one error shape, ``{"code": ..., "detail": ...}``."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from recognition.pipeline.errors import ImageTooLargeError, PipelineError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PipelineError):
        code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if isinstance(exc, ImageTooLargeError) else status.HTTP_400_BAD_REQUEST
        return Response({"code": exc.code, "detail": exc.detail}, status=code)
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict) and "detail" in detail:
            detail = detail["detail"]
            code = getattr(detail, "code", code)
        response.data = {"code": str(code), "detail": detail}
    return response
