"""ws.fairness: a quiet workspace's trigger latency while a noisy one floods the same server.

The noisy workspace runs 40 sockets that trigger a 20 ms CPU handler back to back; the quiet
one triggers the counter every 50 ms on one socket. The figure is the quiet p99 under that
load against the quiet p99 of the same server idle, with the production quotas in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workspaces.benchmarks.harness import (
    Server,
    base_env,
    manage,
    provision,
    scratch_database,
    start_server,
    unique_prefix,
)
from workspaces.benchmarks.live import COUNTER_SOURCE, _connect
from workspaces.benchmarks.report import case, median, percentile

SPIN_SOURCE = """<NexusPanel id="spin" title="Spin">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Tool name="spin">
      <Handler>const t = Date.now(); while (Date.now() - t &lt; 20) {} $state.n += 1; return $state.n;</Handler>
    </Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""

NOISY_SOCKETS = 40
NOISY_PANELS = 8
QUIET_PERIOD_S = 0.05
# After a refusal a noisy client waits as the answer's retryAfter asks, at most this long, then
# pushes again: it obeys the protocol but never gives up.
NOISY_MAX_BACKOFF_S = 1.0
# The production defaults, which base_env raises for the other cases.
PRODUCTION_QUOTAS = {
    "WORKSPACE_MAX_CONCURRENT": "4",
    "WORKSPACE_EXECUTIONS_PER_MINUTE": "600",
    "WORKSPACE_SANDBOX_MS_PER_MINUTE": "30000",
    "WORKSPACE_HTTP_CALLS_PER_MINUTE": "300",
}
# A trigger every 50 ms is 1200 a minute, over the default budget: the quiet workspace gets an
# override, as staff would give it in the admin console.
QUIET_OVERRIDE = """
from workspaces.models import Workspace, WorkspaceQuota
from workspaces.services import quotas
quotas.save_override(WorkspaceQuota(workspace=Workspace.objects.get(slug="quiet"), executions_per_minute=6000))
"""


@dataclass
class Tenants:
    server: Server
    tokens: dict[str, str]

    def create(self, workspace: str, panel_id: str, source: str) -> None:
        response = httpx.post(
            f"{self.server.url}/api/v1/workspaces/{workspace}/panels/", json={"id": panel_id, "source": source},
            headers={"Authorization": f"Bearer {self.tokens[workspace]}"}, timeout=30,
        )
        response.raise_for_status()

    def ws(self, workspace: str, panel_id: str) -> str:
        return (f"{self.server.ws_url}/ws/workspaces/{workspace}/panels/{panel_id}/"
                f"?token={self.tokens[workspace]}")


@contextlib.contextmanager
def tenants() -> Iterator[Tenants]:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as folder:
        tmp = Path(folder)
        with scratch_database(tmp) as database:
            env = base_env(DATABASE_URL=database.url, MAX_PANELS="1000", MAX_INSTANCES="8", MIN_INSTANCES="2",
                           REDIS_URL="", REDIS_PREFIX=unique_prefix(), **PRODUCTION_QUOTAS)
            tokens = {"noisy": provision(env, "noisy", "noisy", max_panels=1000),
                      "quiet": provision(env, "quiet", "quiet", max_panels=1000, migrate=False)}
            manage("shell", "-c", QUIET_OVERRIDE, env=env)
            server = start_server(env, tmp)
            try:
                yield Tenants(server, tokens)
            finally:
                server.terminate()


async def _answer(socket: Any, request_id: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await socket.recv())
        if frame.get("type") in ("RESULT", "ERROR") and frame.get("requestId") == request_id:
            return frame
        if frame.get("type") == "PING":
            await socket.send(json.dumps({"type": "PONG"}))


async def _quiet(url: str, samples: int) -> tuple[list[float], int]:
    """Round trips of one counter trigger every QUIET_PERIOD_S; and how many were refused."""
    socket = await _connect(url)
    latencies: list[float] = []
    refused = 0
    try:
        for index in range(samples):
            started = time.perf_counter()
            await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": str(index)}))
            answer = await asyncio.wait_for(_answer(socket, str(index)), 30)
            latencies.append((time.perf_counter() - started) * 1000)
            if answer["type"] != "RESULT" or answer.get("status") != "success":
                refused += 1
            await asyncio.sleep(max(0.0, QUIET_PERIOD_S - (time.perf_counter() - started)))
    finally:
        await socket.close()
    return latencies, refused


async def _noisy(url: str, stop: asyncio.Event, outcomes: Counter[str]) -> None:
    socket = await _connect(url)
    try:
        index = 0
        while not stop.is_set():
            index += 1
            await socket.send(json.dumps({"type": "TRIGGER", "tool": "spin", "args": {}, "requestId": str(index)}))
            answer = await asyncio.wait_for(_answer(socket, str(index)), 60)
            if answer["type"] == "RESULT":
                outcomes["success" if answer.get("status") == "success" else "error"] += 1
            else:
                outcomes[str(answer.get("code"))] += 1
                await asyncio.sleep(min(float(answer.get("retryAfter") or 0.1), NOISY_MAX_BACKOFF_S))
    finally:
        await socket.close()


def ws_fairness(quick: bool) -> dict[str, Any]:
    samples = 60 if quick else 300
    with tenants() as deployment:
        deployment.create("quiet", "counter", COUNTER_SOURCE)
        for index in range(NOISY_PANELS):
            deployment.create("noisy", f"spin-{index}", SPIN_SOURCE.replace('id="spin"', f'id="spin-{index}"'))

        async def measure() -> tuple[list[float], list[float], int, Counter[str]]:
            quiet_url = deployment.ws("quiet", "counter")
            await _quiet(quiet_url, 10)  # warm-up
            idle, _ = await _quiet(quiet_url, samples)
            stop = asyncio.Event()
            outcomes: Counter[str] = Counter()
            noisy = [asyncio.ensure_future(_noisy(deployment.ws("noisy", f"spin-{index % NOISY_PANELS}"), stop,
                                                  outcomes)) for index in range(NOISY_SOCKETS)]
            await asyncio.sleep(1.0)  # the flood is on before the quiet client measures
            try:
                loaded, refused = await _quiet(quiet_url, samples)
            finally:
                stop.set()
                await asyncio.gather(*noisy, return_exceptions=True)
            return idle, loaded, refused, outcomes

        idle, loaded, quiet_refused, outcomes = asyncio.run(measure())
    rejections = {code: count for code, count in outcomes.items() if code not in ("success", "error")}
    return case(
        percentile(loaded, 0.99), "ms", baseline=percentile(idle, 0.99), target=3.0,
        quiet_median=round(median(loaded), 3), idle_median=round(median(idle), 3), samples=samples,
        quiet_refused=quiet_refused, noisy_runs=outcomes["success"], noisy_errors=outcomes["error"],
        noisy_rejections=rejections, noisy_sockets=NOISY_SOCKETS,
    )
