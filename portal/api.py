"""API plumbing shared by every app: one error shape, ``{"code": ..., "detail": ...}``."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from recognition.pipeline.errors import PipelineError

# By code, not by class: errors raised on a worker come back as codes.
STATUS_BY_CODE = {
    "image_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "recognition_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "model_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "invalid_code": status.HTTP_403_FORBIDDEN,
    "too_many_attempts": status.HTTP_429_TOO_MANY_REQUESTS,
}

log = logging.getLogger("rollcall.api")


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
    # Anything else is a fault of ours (here or on a worker): logged with its traceback, and the
    # caller still gets the API's one error shape rather than an HTML page.
    log.error("unexpected error in %s", context.get("view").__class__.__name__, exc_info=exc)
    set_rollback()  # nothing half-written stays when requests run in a transaction
    return Response({"code": "server_error", "detail": "The server failed to handle this request; it has been logged."},
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)
