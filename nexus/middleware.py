"""HTTP middleware: request ids and one log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from nexus.errors import error_response
from nexus.logging import request_id_var
from runtime.errors import ErrorCode

logger = logging.getLogger("nexus.request")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_HEADER = "X-Request-ID"
PROBE_PATHS = ("/health", "/metrics")


def incoming_request_id(value: str | None) -> str:
    """Reuse a caller's id when it is sane; otherwise make one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class HybridMiddleware:
    """Middleware that serves both sync and async chains without a thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)  # type: ignore[type-var]


class RequestLogMiddleware(HybridMiddleware):
    """Assign a request id, echo it back, and log method, path, status and duration."""

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        token, started = self._begin(request)
        try:
            response = self.get_response(request)
            return self._finish(request, response, started)
        finally:
            request_id_var.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token, started = self._begin(request)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
            response = await get_response(request)
            return self._finish(request, response, started)
        finally:
            request_id_var.reset(token)

    def _begin(self, request: HttpRequest) -> tuple[Any, float]:
        request_id = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id_var.set(request_id), time.perf_counter()

    def _finish(self, request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        if request.path.startswith(PROBE_PATHS) and response.status_code < 500:
            level = logging.DEBUG  # kubelet probes and scrapes every few seconds would drown the log
        logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response


class BodyLimitMiddleware(HybridMiddleware):
    """Refuse bodies over BODY_LIMIT before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        from django.conf import settings

        super().__init__(get_response)
        self.limit: int = settings.NEXUS.BODY_LIMIT

    def __call__(self, request: HttpRequest) -> Any:
        too_large = self._refusal(request)
        if iscoroutinefunction(self):
            return self._acall(request, too_large)
        return too_large or self.get_response(request)

    async def _acall(self, request: HttpRequest, too_large: HttpResponse | None) -> HttpResponse:
        if too_large is not None:
            return too_large
        response: HttpResponse = await self.get_response(request)
        return response

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return error_response(400, ErrorCode.INVALID_REQUEST, "Content-Length is not a number")
        if length > self.limit:
            return error_response(
                413, ErrorCode.PAYLOAD_TOO_LARGE, f"Request body of {length} bytes exceeds the limit of {self.limit}"
            )
        return None


class DatabaseUnavailableMiddleware(HybridMiddleware):
    """A database that does not answer is a 503 UNAVAILABLE, not a 500, wherever it surfaces."""

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.db import InterfaceError, OperationalError

        if isinstance(exception, OperationalError | InterfaceError):
            logging.getLogger("nexus.request").warning("database unavailable: %s", exception)
            return error_response(503, ErrorCode.UNAVAILABLE, "Database unavailable")
        return None


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]
    """WhiteNoise, usable in an async middleware chain.

    WhiteNoise's middleware is synchronous only, which would push every request through a
    thread hop; here only the requests for static files go to a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            response: HttpResponse = await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
            return response
        response = await self.get_response(request)
        return response


class DebugNotFoundMiddleware(HybridMiddleware):
    """With DEBUG on, a 404 still answers as in production: the JSON body under the API, the
    app's 404 page elsewhere, instead of Django's debug page listing every URL pattern."""

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._replace(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._replace(request, await self.get_response(request))

    @staticmethod
    def _replace(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code != 404 or not response.get("Content-Type", "").startswith("text/html"):
            return response
        from workspaces.api.views import not_found

        return not_found(request)
