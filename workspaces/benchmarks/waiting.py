"""ws.waiting: a counter's trigger latency while thirty handlers wait on a slow service, on two instances."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from workspaces.benchmarks.live import Deployment, _connect, deployment
from workspaces.benchmarks.report import case, percentile

WAITERS = 30
SERVICE_DELAY_S = 1.5
WAITER_SOURCE = """<NexusPanel id="waiter" title="Waiter">
  <Data><State name="status" type="string" default="unknown" /></Data>
  <Logic>
    <Extension name="nexus.http" alias="http" />
    <Tool name="check">
      <Capabilities>
        <Capability type="state:write" scope="*" />
        <Capability type="ext:http" scope="*" />
      </Capabilities>
      <Handler>
        const res = await $ext.http.get('/slow');
        $state.status = res.status === 200 ? 'online' : 'down';
      </Handler>
    </Tool>
  </Logic>
  <View><Text content="{$state.status}" /></View>
</NexusPanel>"""


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(SERVICE_DELAY_S)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def slow_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _create_waiter(dep: Deployment, panel_id: str, service_url: str) -> None:
    response = httpx.post(
        f"{dep.servers[0].url}/api/v1/workspaces/{dep.workspace}/panels/",
        json={"id": panel_id, "source": WAITER_SOURCE, "extensions": {"http": {"baseURL": service_url}}},
        headers=dep.headers, timeout=30,
    )
    response.raise_for_status()


async def _counter_latencies(dep: Deployment, count: int) -> list[float]:
    socket = await _connect(dep.ws("counter"))
    samples = []
    try:
        for index in range(count):
            started = time.perf_counter()
            await socket.send(f'{{"type": "TRIGGER", "tool": "increment", "args": {{}}, "requestId": "{index}"}}')
            while '"RESULT"' not in await socket.recv():
                pass
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    finally:
        await socket.close()
    return samples


async def _while_waiting(dep: Deployment, count: int) -> tuple[list[float], list[str]]:
    async with httpx.AsyncClient(headers=dep.headers, timeout=60) as client:
        base = f"{dep.servers[0].url}/api/v1/workspaces/{dep.workspace}/panels"
        waiters = [asyncio.ensure_future(client.post(f"{base}/waiter-{index}/tools/check/", json={}))
                   for index in range(WAITERS)]
        await asyncio.sleep(0.3)  # every waiter has reached its await
        latencies = await _counter_latencies(dep, count)
        answers = await asyncio.gather(*waiters)
    return latencies, [answer.json().get("status", "?") for answer in answers]


def ws_waiting(quick: bool) -> dict[str, Any]:
    count = 20 if quick else 50
    with slow_service() as service_url, deployment(MAX_INSTANCES="2", MIN_INSTANCES="1",
                                                   HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
                                                   HTTP_MAX_CONCURRENT=str(WAITERS)) as dep:
        dep.create_panel("counter")
        for index in range(WAITERS):
            _create_waiter(dep, f"waiter-{index}", service_url)
        idle = asyncio.run(_counter_latencies(dep, count))
        busy, statuses = asyncio.run(_while_waiting(dep, count))
    return case(
        percentile(busy, 0.99), "ms", baseline=percentile(idle, 0.99), target=2.0,
        waiters=WAITERS, service_delay_s=SERVICE_DELAY_S, samples=count,
        waiters_succeeded=statuses.count("success"),
    )
