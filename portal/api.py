"""API plumbing shared by every app: one error shape, ``{"code": ..., "detail": ...}``."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import parsers, serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
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


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested too deep for the decoder a 400 (not a RecursionError's 500)."""

    def parse(self, stream, media_type=None, parser_context=None):  # noqa: ANN001, ANN201
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PipelineError):
        http_status = STATUS_BY_CODE.get(exc.code, status.HTTP_400_BAD_REQUEST)
        return Response({"code": exc.code, "detail": exc.detail}, status=http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response({"code": "request_too_large", "detail": "The request body is over the size limit."},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response({"code": "bad_request", "detail": "The request has too many fields or files."},
                        status=status.HTTP_400_BAD_REQUEST)
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


# --- Every URL under /api/ answers JSON, even where no API view runs ----------------------------

def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_error(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status_code)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON under /api/ (unknown URLs, ids out of range), Django's page elsewhere."""
    if _is_api(request):
        return _json_error("not_found", "No API resource at this URL.", 404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _json_error("bad_request", "The request could not be read.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _json_error("permission_denied", "You do not have permission to perform this action.", 403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json_error("server_error", "The server failed to handle this request; it has been logged.", 500)
    return defaults.server_error(request)


class IdConverter:
    """A database id in a URL: digits that fit a 64-bit key; anything else is no URL (a 404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(value)


MAX_ID = 2**63 - 1


class Pagination(PageNumberPagination):
    """Pages of 50 (``PAGE_SIZE``); a page that is not a positive number is a 400 with a field error."""

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[no-untyped-def]
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and raw not in self.last_page_strings:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= 10**9):
                raise ValidationError({self.page_query_param: ["A page number: a positive integer (or 'last')."]})
        return super().paginate_queryset(queryset, request, view)


@functools.cache
def page_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The documented shape of one page of ``item`` objects (what Pagination answers)."""
    return type(f"Paginated{item.__name__}List", (serializers.Serializer,), {
        "count": serializers.IntegerField(help_text="objects over every page"),
        "next": serializers.URLField(allow_null=True, help_text="the next page, or null"),
        "previous": serializers.URLField(allow_null=True, help_text="the previous page, or null"),
        "results": item(many=True),
        "__module__": item.__module__,
    })


class ApiError(serializers.Serializer):
    """The one error shape of the API."""

    code = serializers.CharField(help_text="machine-readable: invalid, not_found, no_face, image_too_small, ...")
    detail = serializers.JSONField(help_text="a message, or for invalid input {field: [messages]}")


class IdField(serializers.IntegerField):
    """A database id: ASCII digits (or a JSON integer) from 1 to 2**63-1; ``1.5``, `` 1 ``, ``１２``
    or ``2**63`` are field errors, never a 500 or a silent guess."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or (isinstance(data, str) and not re.fullmatch(r"[0-9]{1,19}", data)):
            self.fail("invalid")
        if not isinstance(data, (str, int)):
            self.fail("invalid")
        return super().to_internal_value(data)


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """An integer field for a database id (1 .. 2**63-1): anything else is a field error, not a 500."""
    return IdField(**kwargs)


PAGE_PARAMETER = {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
                  "description": "A page number (pages of 50); past the last page: 404."}
ERROR_COMPONENT = {
    "type": "object",
    "description": "The one error shape of the API.",
    "properties": {
        "code": {"type": "string", "description": "machine-readable: invalid, not_found, parse_error, no_face, "
                                                  "image_too_small, invalid_image, image_too_large, ..."},
        "detail": {"description": "a message, or for invalid input an object {field: [messages]}"},
    },
    "required": ["code", "detail"],
}
ERROR_MEANING = {
    400: "Invalid input (field errors in detail) or an unusable image (no_face, image_too_small, ...)",
    401: "No or a bad device token",
    403: "Not allowed for this caller",
    404: "No such object (or not visible to this caller), or a page past the last",
    413: "The upload is over the size or pixel limit",
    415: "A request body of a media type this operation does not read",
    429: "Too many attempts: try again later",
    503: "Recognition is unavailable (no worker answered, a model cannot be loaded)",
}


def schema_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents the error answers it can give,
    each with the ``Error`` component, so a client generated from the schema expects them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                if parameter.get("name") == "page" and parameter.get("in") == "query":
                    parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 10**9}
            body = operation.get("requestBody")
            media = (body or {}).get("content", {})
            uploads = "multipart/form-data" in media and all(kind == "multipart/form-data" for kind in media)
            codes = {429}
            if parameters or body:
                codes.add(400)
            if any(p.get("in") == "path" for p in parameters) or any(p.get("name") == "page" for p in parameters) \
                    or (body and method in ("post", "patch", "put")):
                codes.add(404)
            if any(scheme for scheme in operation.get("security", [])):
                codes |= {401, 403}
            if body:
                codes.add(415)
            if uploads:
                codes |= {413, 503}
            for code in sorted(codes):
                operation["responses"].setdefault(str(code), {
                    "description": ERROR_MEANING[code], "content": {"application/json": {"schema": ref}}})
    return result
