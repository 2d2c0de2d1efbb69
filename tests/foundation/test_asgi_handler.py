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


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_stops_being_read_at_the_body_limit(settings: Any) -> None:
    """Any ASGI server: the handler stops pulling body messages once the limit is passed."""
    import dataclasses
    import json

    from nexus.asgi import django_asgi_app

    settings.NEXUS = dataclasses.replace(settings.NEXUS, BODY_LIMIT=1000)
    pulled: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        pulled.append(1)
        if len(pulled) > 10_000:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b" " * 100, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/api/v1/auth/token/", "raw_path": b"/api/v1/auth/token/",
        "query_string": b"", "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
        "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": "",
        "asgi": {"version": "3.0"},
    }
    asyncio.run(django_asgi_app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    assert start["status"] == 413
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert len(pulled) == 11  # 1100 bytes: the first message past the limit
