"""API plumbing shared by every app: one error shape, ``{"code": ..., "detail": ...}``."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from recognition.pipeline.errors import PipelineError

# By code, not by class: errors raised on a worker come back as codes.
STATUS_BY_CODE = {
    "image_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "recognition_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "model_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "invalid_code": status.HTTP_403_FORBIDDEN,
    "too_many_attempts": status.HTTP_429_TOO_MANY_REQUESTS,
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PipelineError):
        http_status = STATUS_BY_CODE.get(exc.code, status.HTTP_400_BAD_REQUEST)
        return Response({"code": exc.code, "detail": exc.detail}, status=http_status)
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict) and "detail" in detail:
            detail = detail["detail"]
            code = getattr(detail, "code", code)
        response.data = {"code": str(code), "detail": detail}
    return response
