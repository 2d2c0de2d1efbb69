"""End-to-end cases against real server processes: WebSocket round trips, throughput, fan-out, REST."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workspaces.benchmarks.harness import (
    Server,
    base_env,
    provision,
    redis_server,
    scratch_database,
    start_server,
    unique_prefix,
)
from workspaces.benchmarks.report import case, median, percentile, skipped

COUNTER_SOURCE = """<NexusPanel id="counter" title="Counter">
  <Data><State name="count" type="number" default="0" /></Data>
  <Logic>
    <Tool name="increment"><Arg name="by" type="number" default="1" />
      <Handler>$state.count = $state.count + $args.by; return $state.count;</Handler>
    </Tool>
  </Logic>
  <View><Metric label="Count" value="{$state.count}" /></View>
</NexusPanel>"""


@dataclass
class Deployment:
    servers: list[Server]
    token: str
    workspace: str = "bench"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def create_panel(self, panel_id: str, server: int = 0) -> None:
        response = httpx.post(
            f"{self.servers[server].url}/api/v1/workspaces/{self.workspace}/panels/",
            json={"id": panel_id, "source": COUNTER_SOURCE}, headers=self.headers, timeout=30,
        )
        response.raise_for_status()

    def ws(self, panel_id: str, server: int = 0) -> str:
        return f"{self.servers[server].ws_url}/ws/workspaces/{self.workspace}/panels/{panel_id}/?token={self.token}"


@contextlib.contextmanager
def deployment(processes: int = 1, redis_url: str | None = None, **settings: str) -> Iterator[Deployment]:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as folder:
        tmp = Path(folder)
        with scratch_database(tmp) as database:
            env = base_env(**{"DATABASE_URL": database.url, "MAX_PANELS": "1000", "NEXUS_BENCH_ECHO": "true",
                              "MAX_INSTANCES": "8", "MIN_INSTANCES": "2", **settings})
            env["REDIS_URL"] = redis_url if redis_url is not None else env.get("REDIS_URL", "")
            env["REDIS_PREFIX"] = unique_prefix()
            token = provision(env, max_panels=1000)
            servers: list[Server] = []
            try:
                for _ in range(processes):
                    servers.append(start_server(env, tmp))
                yield Deployment(servers, token)
            finally:
                for server in servers:
                    server.terminate()


async def _connect(url: str) -> Any:
    import websockets

    socket = await websockets.connect(url, max_size=None, open_timeout=20)
    connected = json.loads(await socket.recv())
    if connected.get("type") != "CONNECTED":
        raise RuntimeError(f"expected CONNECTED, got {connected}")
    return socket


async def _round_trips(url: str, count: int, frame: dict[str, Any], until: str | None) -> list[float]:
    socket = await _connect(url) if until else await _connect_echo(url)
    samples = []
    try:
        for index in range(count):
            frame["requestId"] = str(index)
            text = json.dumps(frame)
            started = time.perf_counter()
            await socket.send(text)
            while True:
                reply = json.loads(await socket.recv())
                if until is None or reply.get("type") == until:
                    break
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await socket.close()
    return samples


async def _connect_echo(url: str) -> Any:
    import websockets

    return await websockets.connect(url, max_size=None, open_timeout=20)


def ws_trigger(quick: bool) -> dict[str, Any]:
    count = 150 if quick else 2000
    # One socket sends back to back for seconds, far over the default frame rate: raised here,
    # since this case measures latency, not the limit.
    with deployment(WS_MAX_MESSAGES_PER_SECOND="5000", WS_MESSAGE_BURST="5000") as dep:
        dep.create_panel("rtt")
        trigger = {"type": "TRIGGER", "tool": "increment", "args": {"by": 1}}
        echo_url = f"{dep.servers[0].ws_url}/ws/bench/echo/"

        async def measure() -> tuple[list[float], list[float]]:
            await _round_trips(dep.ws("rtt"), 30, dict(trigger), "RESULT")  # warm-up
            await _round_trips(echo_url, 30, {"type": "ECHO"}, None)
            triggers = await _round_trips(dep.ws("rtt"), count, dict(trigger), "RESULT")
            echoes = await _round_trips(echo_url, count, {"type": "ECHO"}, None)
            return triggers, echoes

        triggers, echoes = asyncio.run(measure())
    database = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    return case(
        median(triggers), "ms", baseline=median(echoes), target=4.0 if database == "postgresql" else 3.0,
        p99=round(percentile(triggers, 0.99), 3), baseline_p99=round(percentile(echoes, 0.99), 3),
        samples=count, database=database,
    )


async def _client_loop(url: str, deadline: float, counts: list[int], errors: list[str]) -> None:
    socket = await _connect(url)
    try:
        index = 0
        while time.monotonic() < deadline:
            index += 1
            await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": index}))
            while True:
                reply = json.loads(await socket.recv())
                if reply.get("type") == "RESULT":
                    if reply.get("status") == "success":
                        counts.append(1)
                    else:
                        errors.append(str(reply.get("error")))
                    break
                if reply.get("type") == "ERROR":
                    errors.append(reply.get("code", "ERROR"))
                    break
    finally:
        await socket.close()


def ws_throughput(quick: bool) -> dict[str, Any]:
    clients, seconds = 50, (2.0 if quick else 10.0)
    with deployment() as dep:
        for index in range(clients):
            dep.create_panel(f"tp-{index}")

        async def run(urls: list[str]) -> tuple[float, int]:
            counts: list[int] = []
            errors: list[str] = []
            deadline = time.monotonic() + seconds
            started = time.perf_counter()
            await asyncio.gather(*(_client_loop(url, deadline, counts, errors) for url in urls))
            return len(counts) / (time.perf_counter() - started), len(errors)

        spread, spread_errors = asyncio.run(run([dep.ws(f"tp-{i}") for i in range(clients)]))
        shared, shared_errors = asyncio.run(run([dep.ws("tp-0")] * clients))
    return case(
        spread, "triggers/s", shared_panel=round(shared, 1), clients=clients, seconds=seconds,
        errors=spread_errors + shared_errors,
    )


def ws_fanout(quick: bool) -> dict[str, Any]:
    subscribers, triggers = 100, (20 if quick else 200)
    with redis_server() as redis_url:
        if redis_url is None:
            return skipped("needs Redis: set REDIS_URL or install redis-server")
        with deployment(processes=2, redis_url=redis_url) as dep:
            dep.create_panel("fan")

            async def measure() -> list[float]:
                sockets = await asyncio.gather(*(_connect(dep.ws("fan", i % 2)) for i in range(subscribers)))
                trigger_socket = await _connect(dep.ws("fan", 0))
                latencies = []
                try:
                    for index in range(triggers):
                        started = time.perf_counter()
                        await trigger_socket.send(json.dumps(
                            {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": index}))
                        await asyncio.gather(*(_until_patch(s) for s in sockets))
                        latencies.append((time.perf_counter() - started) * 1000)
                        await _until(trigger_socket, "RESULT")
                finally:
                    for sock in [*sockets, trigger_socket]:
                        await sock.close()
                return latencies

            latencies = asyncio.run(measure())
    return case(percentile(latencies, 0.99), "ms", target=50.0, median=round(median(latencies), 3),
                subscribers=subscribers, processes=2, triggers=triggers)


async def _until(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await socket.recv())
        if message.get("type") == kind:
            return message


async def _until_patch(socket: Any) -> None:
    await _until(socket, "PATCH")


def rest_trigger(quick: bool) -> dict[str, Any]:
    count = 100 if quick else 1000
    with deployment() as dep:
        dep.create_panel("rest")
        url = f"{dep.servers[0].url}/api/v1/workspaces/{dep.workspace}/panels/rest/tools/increment/"
        samples = []
        with httpx.Client(headers=dep.headers, timeout=30) as client:
            for index in range(count + 20):
                started = time.perf_counter()
                client.post(url, json={"args": {"by": 1}}).raise_for_status()
                if index >= 20:
                    samples.append((time.perf_counter() - started) * 1000)
        health = _median_get(f"{dep.servers[0].url}/health/live", count)
    return case(median(samples), "ms", baseline=health, p99=round(percentile(samples, 0.99), 3), samples=count)


def rest_create_panel(quick: bool) -> dict[str, Any]:
    count = 30 if quick else 200
    with deployment() as dep:
        samples = []
        for index in range(count):
            started = time.perf_counter()
            dep.create_panel(f"created-{index}")
            samples.append((time.perf_counter() - started) * 1000)
    return case(median(samples), "ms", p99=round(percentile(samples, 0.99), 3), samples=count)


def _median_get(url: str, count: int) -> float:
    samples = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return median(samples)
