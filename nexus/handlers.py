"""Django's ASGI handler, with the middleware chain run synchronously in one step.

In async mode Django calls every hook of a ``MiddlewareMixin`` middleware (security,
sessions, CSRF, auth, messages, Prometheus, ...) through ``sync_to_async``: about twenty
thread hops per request. This handler builds the chain in sync mode and runs it, view
included, in a single hop to the request's sync thread (the same thread-sensitive thread
Django's request signals use, so connection handling is unchanged). Async views are awaited
on the event loop from there, as Django does for any async view in a sync chain.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):  # type: ignore[misc]
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        return response


def get_asgi_application() -> Any:
    """What ``django.core.asgi.get_asgi_application`` does, with this handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
