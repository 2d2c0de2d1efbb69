"""Two server processes sharing PostgreSQL/SQLite and Redis: MCP on one, browsers on the other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp import types

from tests.integration.conftest import Live, example, receive_until, start_live
from tests.integration.test_extensions_live import Target
from tests.mcp.conftest import Notifications, create_samples, mcp_session
from tests.support.servers import redis_server, scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("mcp-pair")
    with redis_server() as redis_url, scratch_database(tmp) as database:
        assert redis_url, "these tests need redis-server on this machine or REDIS_URL"
        live = start_live(tmp, database.url, processes=2, REDIS_URL=redis_url, HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1")
        try:
            create_samples(live, target)
            yield live
        finally:
            for server in [live.server, *live.extra_servers]:
                server.terminate()


async def test_a_call_on_one_process_reaches_sockets_on_the_other(pair: Live) -> None:
    other = pair.extra_servers[0]
    socket = await pair.connect("counter", server=other)
    async with mcp_session(pair) as session:
        await session.initialize()
        result = await session.call_tool("counter__increment", {"by": 2})
    assert not result.isError and result.structuredContent is not None
    patch = await receive_until(socket, "PATCH")
    assert patch["stateVersion"] == result.structuredContent["stateVersion"]
    assert patch["mutations"][0]["value"] == result.structuredContent["returnValue"]
    await socket.close()


async def test_a_subscriber_on_one_process_hears_commits_and_new_panels_of_the_other(pair: Live) -> None:
    other = pair.extra_servers[0]
    notifications = Notifications()
    async with mcp_session(pair, message_handler=notifications) as session:
        await session.initialize()
        await session.subscribe_resource("nexus://workspaces/acme/panels/counter/state")  # type: ignore[arg-type]
        updated = await notifications.after(lambda: pair.api(
            "POST", "/api/v1/workspaces/acme/panels/counter/tools/increment/", server=other, json={"args": {}}),
            types.ResourceUpdatedNotification)
        assert str(updated.params.uri) == "nexus://workspaces/acme/panels/counter/state"
        response = pair.api("POST", "/api/v1/workspaces/acme/panels/", server=other,
                            json={"id": "elsewhere", "source": example("counter")})
        assert response.status_code == 201, response.text
        await notifications.next_of(types.ToolListChangedNotification)
        assert "elsewhere__increment" in {tool.name for tool in (await session.list_tools()).tools}
