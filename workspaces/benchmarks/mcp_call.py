"""mcp.call: a tool call through the MCP endpoint, against the REST trigger of the same server and run.

The two alternate, one of each per round on panels of their own, so that both see the same
load on the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from workspaces.benchmarks.live import Deployment, deployment
from workspaces.benchmarks.report import case, median, percentile

WARM_UP = 20


async def _timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def _alternate(dep: Deployment, count: int) -> tuple[list[float], list[float]]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    server = dep.servers[0].url
    rest_url = f"{server}/api/v1/workspaces/{dep.workspace}/panels/rest/tools/increment/"
    calls: list[float] = []
    triggers: list[float] = []
    async with (
        httpx.AsyncClient(headers=dep.headers, timeout=30) as http,
        httpx.AsyncClient(headers=dep.headers, timeout=30) as rest,
        streamable_http_client(f"{server}/mcp/workspaces/{dep.workspace}/", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()

        async def mcp_call() -> None:
            result = await session.call_tool("mcp__increment", {"by": 1})
            if result.isError:
                raise RuntimeError(f"MCP call failed: {result.structuredContent}")

        async def rest_trigger() -> None:
            (await rest.post(rest_url, json={"args": {"by": 1}})).raise_for_status()

        for index in range(count + WARM_UP):
            trigger, call = await _timed(rest_trigger), await _timed(mcp_call)
            if index >= WARM_UP:
                triggers.append(trigger)
                calls.append(call)
    return calls, triggers


def mcp_call(quick: bool) -> dict[str, Any]:
    count = 100 if quick else 1000
    with deployment() as dep:
        dep.create_panel("mcp")
        dep.create_panel("rest")
        calls, triggers = asyncio.run(_alternate(dep, count))
    return case(median(calls), "ms", baseline=median(triggers), target=2.0,
                p99=round(percentile(calls, 0.99), 3), baseline_p99=round(percentile(triggers, 0.99), 3),
                samples=count)
