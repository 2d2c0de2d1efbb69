"""Several server processes sharing one database and one Redis behave as replicas of one service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Live, example, receive_until, start_live
from tests.support.servers import redis_server, scratch_database

pytestmark = pytest.mark.slow


async def _collect_patches(socket: Any, start: int, count: int) -> list[int]:
    versions: list[int] = []
    while len(versions) < count:
        patch = await receive_until(socket, "PATCH", timeout=60)
        versions.append(patch["stateVersion"])
        if patch["stateVersion"] >= start + count:
            break
    return versions


async def _fire(socket: Any, prefix: str, count: int) -> list[dict[str, Any]]:
    for index in range(count):
        await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": f"{prefix}{index}"}))
    return [await receive_until(socket, "RESULT", timeout=60) for _ in range(count)]


async def test_200_triggers_across_two_processes_end_at_200_with_ordered_patches(pair: Live) -> None:
    other = pair.extra_servers[0]
    pair.create("shared", example("counter"))
    watcher_a = await pair.connect("shared")
    watcher_b = await pair.connect("shared", server=other)
    sender_a = await pair.connect("shared")
    sender_b = await pair.connect("shared", server=other)
    start = watcher_a.hello["stateVersion"]
    results_a, results_b, seen_a, seen_b = await asyncio.gather(
        _fire(sender_a, "a", 100), _fire(sender_b, "b", 100),
        _collect_patches(watcher_a, start, 200), _collect_patches(watcher_b, start, 200),
    )
    assert all(r["status"] == "success" for r in results_a + results_b)
    expected = list(range(start + 1, start + 201))
    assert seen_a == expected
    assert seen_b == expected
    state = pair.api("GET", "/api/v1/workspaces/acme/panels/shared/state/", server=other).json()
    assert state["state"]["count"] == 200
    assert state["state"]["double"] == 400
    for socket in (watcher_a, watcher_b, sender_a, sender_b):
        await socket.close()


async def test_created_on_one_replica_served_and_pushed_by_the_other(pair: Live) -> None:
    other = pair.extra_servers[0]
    response = pair.api("POST", "/api/v1/workspaces/acme/panels/", json={"id": "replica", "source": example("todo")})
    assert response.status_code == 201
    detail = pair.api("GET", "/api/v1/workspaces/acme/panels/replica/", server=other)
    assert detail.status_code == 200 and detail.json()["id"] == "replica"
    watcher = await pair.connect("replica")  # on the first replica
    actor = await pair.connect("replica", server=other)
    await actor.send(json.dumps({"type": "SET", "key": "input", "value": "eggs"}))
    await actor.send(json.dumps({"type": "TRIGGER", "tool": "add", "args": {}, "requestId": "t1"}))
    result = await receive_until(actor, "RESULT")
    assert result["status"] == "success"
    patches = [await receive_until(watcher, "PATCH") for _ in range(2)]
    keys = {m["key"] for p in patches for m in p["mutations"]}
    assert {"input", "todos", "itemCount"} <= keys
    await watcher.close()
    await actor.close()


@pytest.mark.parametrize("processes", [2])
def test_stopping_one_replica_mid_traffic_loses_no_committed_change(tmp_path: Path, processes: int) -> None:
    with redis_server() as redis_url, scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, processes=processes, REDIS_URL=redis_url)
        survivor = live.extra_servers[0]
        try:
            live.create("steady", example("counter"))

            async def traffic() -> int:
                doomed = await live.connect("steady")
                steady = await live.connect("steady", server=survivor)
                successes = 0
                for index in range(60):
                    socket = doomed if index % 2 == 0 else steady
                    if index == 30:
                        await asyncio.to_thread(live.server.terminate)
                    try:
                        await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {},
                                                      "requestId": index}))
                        result = await receive_until(socket, "RESULT", timeout=20)
                        successes += result["status"] == "success"
                    except Exception as exc:  # the stopped replica's socket is gone; the client would reconnect
                        print("trigger", index, "failed:", type(exc).__name__, exc)
                        continue
                await steady.close()
                return successes

            successes = asyncio.run(traffic())
            state = live.api("GET", "/api/v1/workspaces/acme/panels/steady/state/", server=survivor).json()
            assert state["state"]["count"] == successes
            assert successes >= 45
        finally:
            survivor.terminate()
            live.server.kill()


async def test_readiness_holds_while_sockets_are_open_on_redis(pair: Live) -> None:
    pair.create("ready", example("counter"))
    socket = await pair.connect("ready")
    response = await asyncio.to_thread(pair.api, "GET", "/health/ready")
    assert response.status_code == 200, response.text
    summary = await asyncio.to_thread(pair.api, "GET", "/health")
    assert summary.json()["checks"]["channelLayer"] == "ok"
    await socket.close()
