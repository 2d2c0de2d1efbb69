"""Workspace quotas on real servers: two processes share one budget through Redis; sockets stay open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.integration.conftest import Live, example, start_live
from tests.support.servers import redis_server, scratch_database

pytestmark = pytest.mark.slow

BUDGET = 10  # runs per minute and workspace
PER_PROCESS = 6  # more than half the budget from each process


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("quotas")
    with redis_server() as redis_url, scratch_database(tmp) as database:
        assert redis_url, "these tests need redis-server on this machine or REDIS_URL"
        live = start_live(tmp, database.url, processes=2, REDIS_URL=redis_url,
                          WORKSPACE_EXECUTIONS_PER_MINUTE=str(BUDGET))
        try:
            live.create("counter", example("counter"))
            live.create("counter", example("counter"), workspace="other", user="bob")
            yield live
        finally:
            for server in [live.server, *live.extra_servers]:
                server.terminate()


def within_one_window() -> None:
    """Start well inside a minute, so the budget cannot refill while the test pushes against it."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.5)


def test_two_processes_pushing_over_half_the_budget_together_hit_the_quota(pair: Live) -> None:
    within_one_window()
    servers = [pair.server, pair.extra_servers[0]]
    answers = [pair.api("POST", "/api/v1/workspaces/acme/panels/counter/tools/increment/", server=server, json={})
               for _ in range(PER_PROCESS) for server in servers]
    assert [response.status_code for response in answers].count(200) == BUDGET
    refused = [response for response in answers if response.status_code != 200]
    assert len(refused) == 2 * PER_PROCESS - BUDGET
    for response in refused:
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "QUOTA_EXCEEDED"
        assert (error["details"]["quota"], error["details"]["limit"]) == ("executions", BUDGET)
        assert response.headers["Retry-After"] == str(error["details"]["retryAfter"])


async def _answer(socket: Any, request_id: str) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] in ("RESULT", "ERROR") and frame.get("requestId") == request_id:
                return frame

    return await asyncio.wait_for(wait(), 20)


async def test_a_socket_over_the_quota_gets_error_frames_and_stays_open(pair: Live) -> None:
    await asyncio.to_thread(within_one_window)
    socket = await websockets.connect(pair.ws_url("counter", "bob", workspace="other"), open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    kinds = []
    for index in range(BUDGET + 2):
        await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": f"r{index}"}))
        kinds.append(await _answer(socket, f"r{index}"))
    assert [frame["type"] for frame in kinds] == ["RESULT"] * BUDGET + ["ERROR", "ERROR"]
    for frame in kinds[BUDGET:]:
        assert frame["code"] == "QUOTA_EXCEEDED"
        assert isinstance(frame["retryAfter"], int) and frame["retryAfter"] >= 1
    await socket.send(json.dumps({"type": "PING"}))  # still open: the server answers
    async with asyncio.timeout(20):
        while json.loads(await socket.recv())["type"] != "PONG":
            pass
    await socket.close()
