"""A live Nexus server with the counter and monitor samples, and MCP sessions on it (the official client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import Live, example, start_live
from tests.integration.test_extensions_live import Target
from tests.support.servers import Server, scratch_database


def mcp_url(live: Live, workspace: str = "acme", server: Server | None = None) -> str:
    return f"{(server or live.server).url}/mcp/workspaces/{workspace}/"


@contextlib.asynccontextmanager
async def mcp_session(live: Live, user: str = "alice", workspace: str = "acme", server: Server | None = None,
                      **session_options: Any) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {live.tokens[user]}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http,
        streamable_http_client(mcp_url(live, workspace, server), http_client=http) as (read, write, _),
        ClientSession(read, write, **session_options) as session,
    ):
        yield session


class Notifications:
    """The server notifications a ClientSession receives (pass as its ``message_handler``)."""

    def __init__(self) -> None:
        self.heard: asyncio.Queue[Any] = asyncio.Queue()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            await self.heard.put(message.root)

    async def next_of(self, kind: type, timeout: float = 20) -> Any:
        while True:
            notification = await asyncio.wait_for(self.heard.get(), timeout)
            if isinstance(notification, kind):
                return notification

    async def after(self, action: Callable[[], Any], kind: type, attempts: int = 10) -> Any:
        """Repeat ``action`` until a notification of ``kind`` follows.

        Notifications go over the client's GET stream, which it opens just after initializing;
        those sent before it is open are dropped.
        """
        for _ in range(attempts):
            action()
            try:
                return await self.next_of(kind, timeout=3)
            except TimeoutError:
                continue
        raise AssertionError(f"no {kind.__name__} after {attempts} attempts")


def create_samples(live: Live, target: Target) -> None:
    live.create("counter", example("counter"))
    response = live.api("POST", "/api/v1/workspaces/acme/panels/", json={
        "id": "monitor", "source": example("monitor"), "extensions": {"http": {"baseURL": target.url}}})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    service = Target()
    service.release.set()  # /health answers at once
    yield service
    service.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("mcp")
    with scratch_database(tmp) as database:
        nexus = start_live(tmp, database.url, HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1", HTTP_TIMEOUT="5000")
        try:
            create_samples(nexus, target)
            yield nexus
        finally:
            nexus.server.terminate()
