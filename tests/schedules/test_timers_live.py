"""Live daphne: fifty handlers sleep on nexus.timer at once on a pool of two instances, and all wake."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_timers import SLEEPER
from tests.integration.conftest import Live, start_live
from tests.support.servers import scratch_database

pytestmark = pytest.mark.slow

SLEEPERS = 50
NAP_MS = 3000


async def nap(live: Live, client: httpx.AsyncClient) -> tuple[float, float, httpx.Response]:
    started = time.monotonic()
    response = await client.post(f"{live.server.url}/api/v1/workspaces/acme/panels/sleeper/tools/nap/",
                                 json={"args": {"ms": NAP_MS}}, headers=live.headers(), timeout=60)
    return started, time.monotonic(), response


async def naps_and_a_probe(live: Live) -> tuple[list[tuple[float, float, httpx.Response]], dict[str, int]]:
    async with httpx.AsyncClient() as client:
        sleepers = [asyncio.ensure_future(nap(live, client)) for _ in range(SLEEPERS)]
        waiting: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(task.done() for task in sleepers):
            runtime = (await client.get(f"{live.server.url}/health", timeout=10)).json()["runtime"]
            if runtime.get("suspended", 0) > waiting.get("suspended", -1):
                waiting = {"suspended": runtime["suspended"], "active": runtime["activeInstances"]}
            await asyncio.sleep(0.1)
        return list(await asyncio.gather(*sleepers)), waiting


def test_fifty_sleepers_share_two_instances(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, MAX_INSTANCES="2", MIN_INSTANCES="1")
        try:
            live.create("sleeper", SLEEPER)
            naps, waiting = asyncio.run(naps_and_a_probe(live))
            for started, finished, response in naps:
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "success", response.json()
                assert finished - started >= NAP_MS / 1000
            # Every sleeper waited at the same time, on two instances: none held one while it slept.
            assert max(started for started, _, _ in naps) < min(finished for _, finished, _ in naps)
            assert waiting.get("suspended", 0) >= SLEEPERS - 2, waiting
            health = httpx.get(f"{live.server.url}/health", timeout=10).json()["runtime"]
            assert health["activeInstances"] == 0 and health.get("suspended", 0) == 0
        finally:
            live.server.terminate()
