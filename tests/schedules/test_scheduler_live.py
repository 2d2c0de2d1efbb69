"""Live daphne servers run the schedules themselves, and every open socket gets each tick's PATCH."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import receive_until, start_live
from tests.schedules.conftest import TICKER
from tests.support.servers import redis_server, scratch_database

pytestmark = pytest.mark.slow

EVERY_2S = TICKER.replace('every="1s" args=\'{"by": 2}\'', 'every="2s" args=\'{"by": 1}\'').replace(
    '<Schedule name="failing" tool="fail" every="1s" />', "")


async def versions_seen(socket: Any, count: int) -> list[int]:
    return [(await receive_until(socket, "PATCH", timeout=20))["stateVersion"] for _ in range(count)]


async def test_two_servers_tick_once_and_both_sockets_see_every_patch(tmp_path: Path) -> None:
    with redis_server() as redis_url, scratch_database(tmp_path) as database:
        assert redis_url, "this test needs redis-server on this machine or REDIS_URL"
        live = start_live(tmp_path, database.url, processes=2, REDIS_URL=redis_url, SCHEDULE_MIN_INTERVAL="1s")
        try:
            other = live.extra_servers[0]
            live.create("ticker", EVERY_2S)
            here, there = await live.connect("ticker"), await live.connect("ticker", server=other)
            seen_here, seen_there = await asyncio.gather(versions_seen(here, 3), versions_seen(there, 3))
            assert seen_here == seen_there, "both processes' sockets get the same PATCHes"
            assert seen_here == list(range(seen_here[0], seen_here[0] + 3)), "one PATCH per tick, none twice"
            detail = live.api("GET", "/api/v1/workspaces/acme/panels/ticker/", server=other).json()
            tick = next(item for item in detail["schedules"] if item["name"] == "tick")
            assert tick["lastStatus"] == "success"
            assert detail["state"]["n"] == tick["runs"] or detail["state"]["n"] == tick["runs"] + 1
            for socket in (here, there):
                await socket.close()
        finally:
            for server in [live.server, *live.extra_servers]:
                server.terminate()
