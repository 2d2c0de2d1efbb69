"""Load: 200 WebSocket clients on one server process, each triggering steadily.

Twenty panels with ten clients each; every client sends a TRIGGER, waits for its RESULT,
pauses a little and goes again, for NEXUS_LOAD_SECONDS (60 in CI). Afterwards:

- zero protocol errors: no ERROR frame, no failed RESULT, no unexpected close, every RESULT
  answers an outstanding request, PATCH versions strictly increase per client;
- every panel's counter equals the number of successful RESULTs for it (and b == 2a);
- /health shows no execution still holding a sandbox instance;
- the server's resident memory before, during and after is reported, and bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets

from tests.hardening.support import health, pair_panel, record, start_nexus, vm_rss_kib, wait_until
from tests.integration.conftest import Live
from tests.support.servers import Database

pytestmark = pytest.mark.slow

CLIENTS = 200
PANELS = 20
LOAD_SECONDS = float(os.environ.get("NEXUS_LOAD_SECONDS", "60"))
PAUSE_S = (0.2, 1.0)
RESULT_TIMEOUT_S = 90
# Growth allowed between the idle server and the server after the load has gone away.
RSS_GROWTH_LIMIT_KIB = 256 * 1024


@dataclass
class Tally:
    successes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    patches: int = 0


@pytest.fixture(scope="module")
def live(module_database: tuple[Path, Database]) -> Iterator[Live]:
    tmp, database = module_database
    nexus = start_nexus(tmp, database.url)
    try:
        for index in range(PANELS):
            nexus.create(f"load{index}", pair_panel(f"load{index}"))
        yield nexus
    finally:
        nexus.server.terminate()


async def run_client(live: Live, panel_id: str, name: str, deadline: float, tally: Tally) -> None:
    socket = await websockets.connect(live.ws_url(panel_id), open_timeout=60, max_size=None)
    try:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 60))
        if hello.get("type") != "CONNECTED":
            tally.violations.append(f"{name}: first frame {hello}")
            return
        version = hello["stateVersion"]
        sequence = 0
        while time.monotonic() < deadline:
            request_id = f"{name}-{sequence}"
            sequence += 1
            sent = time.monotonic()
            await socket.send(json.dumps({"type": "TRIGGER", "tool": "bump", "args": {}, "requestId": request_id}))
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), RESULT_TIMEOUT_S))
                kind = frame.get("type")
                if kind == "PING":
                    await socket.send('{"type":"PONG"}')
                elif kind == "PATCH":
                    if frame["stateVersion"] <= version:
                        tally.violations.append(f"{name}: PATCH {frame['stateVersion']} after {version}")
                    version = frame["stateVersion"]
                    tally.patches += 1
                elif kind == "ERROR":
                    tally.errors[frame.get("code", "?")] += 1
                    if frame.get("requestId") == request_id:
                        break
                elif kind == "RESULT":
                    if frame.get("requestId") != request_id:
                        tally.violations.append(f"{name}: RESULT for {frame.get('requestId')}, not {request_id}")
                    elif frame["status"] != "success":
                        tally.errors[f"RESULT:{(frame.get('error') or {}).get('code')}"] += 1
                    else:
                        tally.successes[panel_id] += 1
                        tally.latencies.append(time.monotonic() - sent)
                    break
                elif kind not in ("EVENT", "VIEW", "PONG"):
                    tally.violations.append(f"{name}: unexpected frame {frame}")
            await asyncio.sleep(random.uniform(*PAUSE_S))
    except Exception as exc:
        tally.violations.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        await socket.close()


async def sample_rss(pid: int, stop: asyncio.Event, samples: list[int]) -> None:
    while not stop.is_set():
        samples.append(vm_rss_kib(pid))
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except TimeoutError:
            pass


async def drive(live: Live, tally: Tally, samples: list[int]) -> float:
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(live.server.process.pid, stop, samples))
    started = time.monotonic()
    deadline = started + LOAD_SECONDS
    clients = [
        run_client(live, f"load{index % PANELS}", f"c{index}", deadline, tally) for index in range(CLIENTS)
    ]
    await asyncio.wait_for(asyncio.gather(*clients), LOAD_SECONDS + RESULT_TIMEOUT_S + 120)
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    return elapsed


def test_200_clients_triggering_steadily(live: Live) -> None:
    pid = live.server.process.pid
    for index in range(PANELS):  # warm every panel once so "before" is a server that has worked
        assert live.api("POST", f"/api/v1/workspaces/acme/panels/load{index}/tools/bump/", json={}).status_code == 200
    warm = {f"load{index}": 1 for index in range(PANELS)}
    rss_before = vm_rss_kib(pid)

    tally = Tally()
    samples: list[int] = []
    elapsed = asyncio.run(drive(live, tally, samples))

    assert wait_until(lambda: health(live)["runtime"]["activeInstances"] == 0, 30)
    time.sleep(2)
    rss_after = vm_rss_kib(pid)
    figures = health(live)
    runtime = figures["runtime"]
    total = sum(tally.successes.values())
    latencies = sorted(tally.latencies) or [0.0]
    record(
        "load",
        clients=CLIENTS, panels=PANELS, seconds=round(elapsed, 1), successful_results=total,
        triggers_per_s=round(total / elapsed, 1), patches_received=tally.patches,
        latency_p50_ms=round(statistics.median(latencies) * 1000),
        latency_p99_ms=round(latencies[int(len(latencies) * 0.99) - 1] * 1000),
        errors=dict(tally.errors), violations=len(tally.violations),
        rss_before_mib=round(rss_before / 1024, 1), rss_peak_mib=round(max(samples or [0]) / 1024, 1),
        rss_after_mib=round(rss_after / 1024, 1),
        active_instances=runtime["activeInstances"], available_instances=runtime["availableInstances"],
        max_instances=runtime.get("maxInstances"),
    )

    assert tally.violations == [], tally.violations[:20]
    assert not tally.errors, dict(tally.errors)
    assert total >= CLIENTS, f"only {total} successful triggers in {elapsed:.0f} s"
    for index in range(PANELS):
        panel_id = f"load{index}"
        state = live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/state/").json()["state"]
        assert state["a"] == tally.successes[panel_id] + warm[panel_id], (panel_id, state, tally.successes[panel_id])
        assert state["b"] == 2 * state["a"], (panel_id, state)
    assert runtime["activeInstances"] == 0
    assert runtime["availableInstances"] <= runtime.get("maxInstances", 10)
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_KIB, f"RSS grew from {rss_before} to {rss_after} KiB"
    assert live.server.process.poll() is None
