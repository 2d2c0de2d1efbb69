"""Every API error as {"error": {"code", "message", "details"?}} with the status of its code."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from nexus.errors import error_body
from workspaces.access import AccessDenied
from workspaces.services import telemetry
from workspaces.services.errors import CodedError, ErrorCode

logger = logging.getLogger("nexus.request")

STATUS_CODES: dict[str, int] = {
    ErrorCode.INVALID_NXML: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_ARGS: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOOL_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PANEL_EXISTS: 409,
    ErrorCode.REVISION_CONFLICT: 409,
    ErrorCode.SCHEDULE_RUNNING: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.MAX_PANELS: 429,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.RUNTIME_BUSY: 503,
    ErrorCode.UNAVAILABLE: 503,
}


KNOWN_CODES = frozenset(STATUS_CODES) | {ErrorCode.THROTTLED}


class APIError(exceptions.APIException, CodedError):
    """An error with one of the codes above; the status follows from the code."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        exceptions.APIException.__init__(self, detail=message, code=code)
        CodedError.__init__(self, code, message, details)
        self.status_code = STATUS_CODES.get(code, 400)


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def _translate(exc: Exception) -> tuple[int, str, str, Any]:
    if isinstance(exc, APIError):
        return exc.status_code, exc.code, exc.message, exc.details
    if isinstance(exc, AccessDenied):
        return exc.status, exc.code, exc.message, None
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return 503, ErrorCode.UNAVAILABLE, "Database unavailable", None
    if isinstance(exc, RequestDataTooBig):
        return 413, ErrorCode.PAYLOAD_TOO_LARGE, "Request body exceeds BODY_LIMIT", None
    if isinstance(exc, Http404):
        return 404, ErrorCode.NOT_FOUND, str(exc) or "Not found", None
    if isinstance(exc, DjangoPermissionDenied):
        return 403, ErrorCode.FORBIDDEN, str(exc) or "Forbidden", None
    if isinstance(exc, exceptions.ValidationError):
        return 400, ErrorCode.INVALID_REQUEST, _flatten(exc.detail), {"fields": exc.detail}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, ErrorCode.UNAUTHENTICATED, _flatten(exc.detail), None
    if isinstance(exc, exceptions.PermissionDenied):
        return 403, ErrorCode.FORBIDDEN, _flatten(exc.detail), None
    if isinstance(exc, exceptions.NotFound):
        return 404, ErrorCode.NOT_FOUND, _flatten(exc.detail), None
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, ErrorCode.METHOD_NOT_ALLOWED, _flatten(exc.detail), None
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, _flatten(exc.detail), None
    if isinstance(exc, exceptions.ParseError):
        return 400, ErrorCode.INVALID_REQUEST, _flatten(exc.detail), None
    if isinstance(exc, exceptions.Throttled):
        wait = _retry_after(exc)
        return 429, ErrorCode.THROTTLED, f"Too many requests; retry in {wait} s", {"retryAfter": wait}
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, ErrorCode.INVALID_REQUEST, _flatten(exc.detail), None
    raise exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    try:
        status_code, code, message, details = _translate(exc)
    except Exception:
        return None
    telemetry.count_error(code if code in KNOWN_CODES else "OTHER")
    response = Response(error_body(code, message, details), status=status_code)
    if status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = 'Bearer realm="nexus"'
    if isinstance(exc, exceptions.Throttled):
        response["Retry-After"] = str(_retry_after(exc))
    elif code == ErrorCode.QUOTA_EXCEEDED and isinstance(details, dict) and "retryAfter" in details:
        response["Retry-After"] = str(details["retryAfter"])
    return response


def _retry_after(exc: exceptions.Throttled) -> int:
    return max(1, math.ceil(getattr(exc, "wait", None) or 1))
