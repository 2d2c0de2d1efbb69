"""Django's ASGI handler, with the middleware chain run synchronously in one step.

In async mode Django calls every hook of a ``MiddlewareMixin`` middleware (security,
sessions, CSRF, auth, messages, Prometheus, ...) through ``sync_to_async``: about twenty
thread hops per request. This handler builds the chain in sync mode and runs it, view
included, in a single hop to the request's sync thread (the same thread-sensitive thread
Django's request signals use, so connection handling is unchanged). Async views are awaited
on the event loop from there, as Django does for any async view in a sync chain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

from nexus.body_limit import BodyTooLarge, count_refusal, refusal_message
from nexus.errors import error_response
from runtime.errors import ErrorCode


class SyncChainASGIHandler(ASGIHandler):  # type: ignore[misc]
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().handle(scope, receive, send)
        except BodyTooLarge as refused:
            count_refusal(str(scope.get("path", ""))[:200], refused.limit + 1, refused.limit)
            refusal = error_response(413, ErrorCode.PAYLOAD_TOO_LARGE, refusal_message(refused.limit))
            await self.send_response(refusal, send)

    def create_request(self, scope: Mapping[str, Any], body_file: Any) -> Any:
        """A body sent without Content-Length (chunked) is read by Django only with one: add it."""
        headers = scope.get("headers", [])
        if not any(name.lower() == b"content-length" for name, _ in headers):
            size = body_file.seek(0, 2)
            body_file.seek(0)
            if size:
                scope = {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}
        return super().create_request(scope, body_file)

    async def read_body(self, receive: Any) -> Any:
        """Django's body reader, stopping at BODY_LIMIT however the body is sent (chunked too)."""
        limit: int = settings.NEXUS.BODY_LIMIT
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                body_file.close()
                raise BodyTooLarge(limit)
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        return response


def get_asgi_application() -> Any:
    """What ``django.core.asgi.get_asgi_application`` does, with this handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
