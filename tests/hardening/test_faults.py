"""Faults: a server killed with SIGKILL mid-stream, Redis going away, PostgreSQL dropping every connection.

- kill -9: after a restart the panel holds exactly the RESULTs that were sent as success,
  plus at most the triggers still in flight at the kill; the tool writes two keys in one
  segment, so a half-applied change would break ``b == 2 * a``.
- Redis (a private redis-server, never the machine's shared one): REST keeps working,
  WebSocket clients get an ERROR or a close, and reconnecting clients get PATCHes again
  once it is back.
- PostgreSQL (only when DATABASE_URL points at it): the scratch database refuses and drops
  every connection; requests answer 503 UNAVAILABLE, then work again without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.hardening.support import (
    PrivateRedis,
    alive,
    pair_panel,
    private_redis,
    record,
    restart,
    start_nexus,
    trigger,
    wait_until,
)
from tests.integration.conftest import Live, receive_until
from tests.support.servers import Database

pytestmark = pytest.mark.slow


def state_of(live: Live, panel_id: str) -> dict[str, Any]:
    response = live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/state/")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------- kill -9


@dataclass
class Stream:
    sent: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


async def stream_triggers(live: Live, panel_id: str, name: str, stream: Stream, window: int = 3) -> None:
    """Keep ``window`` triggers in flight on one socket until the server goes away."""
    try:
        socket = await live.connect(panel_id)
    except Exception as exc:
        stream.failures.append(f"{name} could not connect: {exc}")
        return
    sequence = 0

    async def send_one() -> None:
        nonlocal sequence
        request_id = f"{name}-{sequence}"
        sequence += 1
        stream.sent.add(request_id)
        await socket.send(json.dumps({"type": "TRIGGER", "tool": "bump", "args": {}, "requestId": request_id}))

    try:
        for _ in range(window):
            await send_one()
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if frame["type"] == "PING":
                await socket.send('{"type":"PONG"}')
            elif frame["type"] in ("RESULT", "ERROR"):
                stream.answered.add(frame["requestId"])
                if frame["type"] == "RESULT" and frame["status"] == "success":
                    stream.succeeded.add(frame["requestId"])
                else:
                    stream.failures.append(f"{name}: {frame}")
                await send_one()
    except (ConnectionClosed, OSError):
        return  # the kill


async def kill_mid_stream(live: Live, panel_id: str, successes_before_kill: int) -> Stream:
    stream = Stream()
    tasks = [asyncio.ensure_future(stream_triggers(live, panel_id, f"k{index}", stream)) for index in range(6)]
    deadline = time.monotonic() + 60
    while len(stream.succeeded) < successes_before_kill and time.monotonic() < deadline and not stream.failures:
        await asyncio.sleep(0.01)
    live.server.process.kill()  # SIGKILL: no drain, no goodbye
    live.server.process.wait(10)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return stream


@pytest.fixture
def killable(module_database: tuple[Path, Database]) -> Iterator[tuple[Live, Path]]:
    tmp, database = module_database
    live = start_nexus(tmp, database.url)
    try:
        yield live, tmp
    finally:
        live.server.terminate()


def test_kill_9_during_a_stream_of_triggers(killable: tuple[Live, Path]) -> None:
    live, tmp = killable
    live.create("crash", pair_panel("crash"))
    rounds = []
    for round_index in range(2):
        before = state_of(live, "crash")
        stream = asyncio.run(kill_mid_stream(live, "crash", 120))
        assert stream.failures == [], stream.failures[:10]
        in_flight = len(stream.sent - stream.answered)
        restart(live, tmp)
        after = state_of(live, "crash")
        applied = after["state"]["a"] - before["state"]["a"]
        successes = len(stream.succeeded)
        rounds.append({"successes": successes, "in_flight": in_flight, "applied": applied})
        assert successes <= applied <= successes + in_flight, (round_index, successes, in_flight, applied)
        assert after["state"]["b"] == 2 * after["state"]["a"], f"half-applied change: {after}"
        assert after["stateVersion"] - before["stateVersion"] == applied, (before, after)
        answer = asyncio.run(one_trigger(live, "crash"))
        assert answer.get("status") == "success" and answer["returnValue"] == after["state"]["a"] + 1, answer
    record("faults", kill9_rounds=rounds)


async def one_trigger(live: Live, panel_id: str) -> dict[str, Any]:
    socket = await live.connect(panel_id)
    try:
        return await trigger(socket, "bump", "after-restart")
    finally:
        await socket.close()


# ---------------------------------------------------------------- Redis goes away


@pytest.fixture
def with_private_redis(module_database: tuple[Path, Database]) -> Iterator[tuple[Live, PrivateRedis]]:
    tmp, database = module_database
    with private_redis() as redis:
        live = start_nexus(tmp, database.url, REDIS_URL=redis.url, HEARTBEAT_SECONDS="2")
        try:
            yield live, redis
        finally:
            live.server.terminate()


async def error_or_close(socket: Any, timeout: float) -> str:
    """Drive a socket (triggering now and then) until it yields an ERROR or closes."""
    deadline = time.monotonic() + timeout
    sequence = 0
    try:
        while time.monotonic() < deadline:
            await socket.send(json.dumps({"type": "TRIGGER", "tool": "bump", "args": {}, "requestId": f"o{sequence}"}))
            sequence += 1
            end = time.monotonic() + 1
            while time.monotonic() < end:
                try:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), max(0.05, end - time.monotonic())))
                except TimeoutError:
                    break
                if frame["type"] == "PING":
                    await socket.send('{"type":"PONG"}')
                if frame["type"] == "ERROR":
                    return f"ERROR {frame['code']}"
    except ConnectionClosed as closed:
        return f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"
    return "nothing"


async def connect_during_outage(live: Live, panel_id: str, timeout: float) -> str:
    try:
        socket = await asyncio.wait_for(websockets.connect(live.ws_url(panel_id), open_timeout=timeout), timeout)
    except Exception as exc:
        return f"refused: {type(exc).__name__}"
    try:
        return await error_or_close(socket, timeout)
    finally:
        await socket.close()


async def patches_flow(live: Live, panel_id: str) -> dict[str, Any]:
    watcher = await live.connect(panel_id)
    actor = await live.connect(panel_id)
    try:
        answer = await trigger(actor, "bump", "back")
        assert answer["type"] == "RESULT" and answer["status"] == "success", answer
        patch = await receive_until(watcher, "PATCH", timeout=15)
        assert {"key": "a", "value": answer["returnValue"], "operation": "set"} in patch["mutations"], patch
        return patch
    finally:
        await watcher.close()
        await actor.close()


def test_redis_outage_and_return(with_private_redis: tuple[Live, PrivateRedis]) -> None:
    live, redis = with_private_redis
    live.create("relay", pair_panel("relay"))
    asyncio.run(patches_flow(live, "relay"))

    async def outage() -> dict[str, str]:
        connected = await live.connect("relay")
        redis.stop()
        outcome = {"open_socket": await error_or_close(connected, 20)}
        with contextlib.suppress(Exception):
            await connected.close()
        outcome["new_socket"] = await connect_during_outage(live, "relay", 15)
        return outcome

    outcome = asyncio.run(outage())
    rest_state = live.api("GET", "/api/v1/workspaces/acme/panels/relay/state/")
    rest_trigger = live.api("POST", "/api/v1/workspaces/acme/panels/relay/tools/bump/", json={})
    ready = httpx.get(f"{live.server.url}/health/ready", timeout=15)
    summary = httpx.get(f"{live.server.url}/health", timeout=15)
    assert summary.status_code == 503 and summary.json()["checks"]["channelLayer"]["status"] == "fail"
    record("faults", redis_outage=outcome | {"rest_state": rest_state.status_code,
                                              "rest_trigger": rest_trigger.status_code, "ready": ready.status_code})
    assert rest_state.status_code == 200, rest_state.text
    assert rest_trigger.status_code == 200 and rest_trigger.json()["status"] == "success", rest_trigger.text
    assert ready.status_code == 200, "a Redis outage must not take every pod out of the Service"
    assert outcome["open_socket"] != "nothing", "a connected client was left hanging without ERROR or close"
    assert outcome["new_socket"] != "nothing", "a new client was accepted and then left hanging"
    assert alive(live)

    redis.start()
    assert wait_until(lambda: httpx.get(f"{live.server.url}/health", timeout=10).status_code == 200, 30)
    asyncio.run(patches_flow(live, "relay"))
    state = state_of(live, "relay")["state"]
    assert state["b"] == 2 * state["a"]


# ---------------------------------------------------------------- PostgreSQL drops every connection


def using_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith("postgres")


@contextlib.contextmanager
def database_outage(database_url: str) -> Iterator[None]:
    """Refuse new connections to one database and end the open ones; other databases are untouched."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


@pytest.mark.postgres
@pytest.mark.skipif(not using_postgres(), reason="PostgreSQL outage: runs when DATABASE_URL points at PostgreSQL")
def test_postgres_outage_answers_503_then_recovers(module_database: tuple[Path, Database]) -> None:
    tmp, database = module_database
    live = start_nexus(tmp, database.url)
    try:
        live.create("steady", pair_panel("steady"))
        requests = [
            ("GET", "/api/v1/workspaces/acme/panels/steady/state/", None),
            ("POST", "/api/v1/workspaces/acme/panels/steady/tools/bump/", {}),
            ("GET", "/api/v1/workspaces/", None),
        ]
        with database_outage(database.url):
            during = [live.api(method, path, json=body) for method, path, body in requests]
            ready = httpx.get(f"{live.server.url}/health/ready", timeout=15)
            ws_outcome = asyncio.run(connect_during_outage(live, "steady", 15))
        seen = [(response.status_code, error_code(response)) for response in during]
        recovered = wait_until(lambda: live.api("GET", "/api/v1/workspaces/").status_code == 200, 30)
        before = state_of(live, "steady")["state"]["a"] if recovered else None
        answer = live.api("POST", "/api/v1/workspaces/acme/panels/steady/tools/bump/", json={})
        record("faults", postgres_outage={"requests": seen, "ready": ready.status_code, "websocket": ws_outcome,
                                          "recovered": recovered, "trigger_after": answer.status_code})
        assert alive(live), "the server died with its database"
        assert recovered, "requests still fail 30 s after the database came back"
        assert answer.status_code == 200 and answer.json()["returnValue"] == before + 1, answer.text
        assert ready.status_code == 503
        assert ws_outcome != "nothing"
        assert seen == [(503, "UNAVAILABLE")] * len(requests), f"during the outage: {seen}"
    finally:
        live.server.terminate()
