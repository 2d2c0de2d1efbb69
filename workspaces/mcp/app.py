"""The ASGI endpoint ``/mcp/workspaces/{slug}/``: Streamable HTTP on the MCP SDK's session manager.

Every HTTP request (POST, the GET stream, DELETE) is authenticated and checked for
``panel:read`` in the path's workspace before the SDK sees it. Sessions are stateful (they
carry resource subscriptions and list-changed notifications) and live in the process that
opened them; a request with a session id another process opened answers 404, and the
client opens a new session (docs/mcp.md: keep a client on one process).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http.request import split_domain_port, validate_host
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import JSONResponse

from nexus.errors import error_body
from workspaces.access import AccessDenied
from workspaces.mcp.auth import Caller, authorize, refusal_response, session_owner
from workspaces.mcp.server import CALLER, build_server, instructions_for, opening_instructions
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import in_worker
from workspaces.ws_auth import bearer_token

logger = logging.getLogger("nexus.mcp")

PREFIX = "/mcp/"
_PATH = re.compile(r"^/mcp/workspaces/(?P<slug>[-a-zA-Z0-9_]+)/?$")
SESSION_IDLE_SECONDS = 600


def _header(scope: dict[str, Any], name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None


def _host_allowed(scope: dict[str, Any]) -> bool:
    """Django's ALLOWED_HOSTS rule, as for every other HTTP route."""
    domain, _ = split_domain_port(_header(scope, "host") or "")
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _json(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


@in_worker
def _authorize(raw_token: str | None, slug: str, opening: bool) -> tuple[Caller, str | None]:
    caller = authorize(raw_token, slug)
    return caller, instructions_for(caller.workspace) if opening else None


class _Sessions:
    """The SDK's session manager, run for the life of the serving event loop.

    daphne does not speak the ASGI lifespan protocol, so the manager starts with the first
    request; another event loop gets a manager of its own.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[StreamableHTTPSessionManager] | None = None
        self._task: asyncio.Task[None] | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._ready is None:
            self._loop, self._ready = loop, loop.create_future()
            manager = StreamableHTTPSessionManager(
                build_server(), session_idle_timeout=SESSION_IDLE_SECONDS,
                max_request_body_size=settings.NEXUS.BODY_LIMIT,
            )
            self._task = loop.create_task(self._run(manager, self._ready))
        return await asyncio.shield(self._ready)

    async def _run(self, manager: StreamableHTTPSessionManager, ready: asyncio.Future[Any]) -> None:
        try:
            async with manager.run():
                ready.set_result(manager)
                await asyncio.Event().wait()
        except Exception as exc:
            logger.exception("the MCP session manager stopped")
            if not ready.done():
                ready.set_exception(exc)
        finally:
            if self._ready is ready:
                self._ready = None  # the next request starts a new manager


class MCPEndpoint:
    def __init__(self) -> None:
        self.sessions = _Sessions()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _PATH.match(scope.get("path", ""))
        if match is None:
            message = f"No MCP endpoint at {scope.get('path')}: use /mcp/workspaces/<slug>/"
            response = _json(404, ErrorCode.NOT_FOUND, message)
            await response(scope, receive, send)
            return
        if not _host_allowed(scope):
            await _json(400, ErrorCode.INVALID_REQUEST, "Host is not in ALLOWED_HOSTS")(scope, receive, send)
            return
        raw_token = bearer_token(scope)
        opening = scope.get("method") == "POST" and _header(scope, MCP_SESSION_ID_HEADER) is None
        try:
            caller, instructions = await _authorize(raw_token, match["slug"], opening)
        except AccessDenied as denied:
            await refusal_response(denied)(scope, receive, send)
            return
        except (OperationalError, InterfaceError):
            await _json(503, ErrorCode.UNAVAILABLE, "Database unavailable")(scope, receive, send)
            return
        scope = {**scope, CALLER: caller, "user": session_owner(caller, raw_token)}
        if opening:
            opening_instructions.set(instructions)
        manager = await self.sessions.manager()
        await manager.handle_request(scope, receive, send)


endpoint = MCPEndpoint()


def with_mcp(django_application: Any) -> Any:
    """The HTTP application: ``/mcp/...`` to the MCP endpoint, everything else to Django."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").startswith(PREFIX):
            await endpoint(scope, receive, send)
        else:
            await django_application(scope, receive, send)

    return application
