"""HTTP requests through the ASGI application run the middleware chain in one hop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction

from nexus.handlers import SyncChainASGIHandler


def test_the_http_application_runs_a_sync_chain() -> None:
    from nexus.asgi import django_asgi_app

    assert isinstance(django_asgi_app, SyncChainASGIHandler)
    assert not iscoroutinefunction(django_asgi_app._middleware_chain)


@pytest.mark.django_db(transaction=True)
def test_a_request_through_the_handler_keeps_the_project_middleware() -> None:
    from nexus.asgi import django_asgi_app

    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.sleep(30)  # the client stays connected; the handler cancels this wait
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/health/live", "raw_path": b"/health/live", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"x-request-id", b"probe-123")], "scheme": "http",
        "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": "", "asgi": {"version": "3.0"},
    }
    asyncio.run(django_asgi_app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"X-Request-ID"] == b"probe-123"
    assert headers[b"X-Frame-Options"] == b"DENY"
