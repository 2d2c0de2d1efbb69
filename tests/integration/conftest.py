"""A real Nexus server (daphne, loopback) with users, workspaces and sample panels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support.servers import (
    Server,
    base_env,
    provision,
    redis_server,
    scratch_database,
    start_server,
    unique_prefix,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "workspaces" / "fixtures" / "panels"

SLOW_PANEL = """<NexusPanel id="slow" title="Slow">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Tool name="spin"><Arg name="ms" type="number" default="1500" />
      <Handler>const t = Date.now(); while (Date.now() - t &lt; $args.ms) {} $state.n = $state.n + 1; return $state.n;</Handler>
    </Tool>
    <Tool name="fail"><Handler>throw new Error('boom ' + $state.n);</Handler></Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


@dataclass
class Live:
    server: Server
    tokens: dict[str, str]
    env: dict[str, str]
    extra_servers: list[Server] = field(default_factory=list)

    def headers(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def api(self, method: str, path: str, user: str = "alice", server: Server | None = None, **kwargs: Any) -> httpx.Response:
        base = (server or self.server).url
        return httpx.request(method, f"{base}{path}", headers=self.headers(user), timeout=30, **kwargs)

    def metrics(self) -> str:
        """A Prometheus scrape, on the metrics port (the public port does not serve /metrics)."""
        return httpx.get(self.server.metrics_url, timeout=30).text

    def create(self, panel_id: str, source: str, workspace: str = "acme", user: str = "alice") -> dict[str, Any]:
        response = self.api("POST", f"/api/v1/workspaces/{workspace}/panels/", user,
                            json={"id": panel_id, "source": source})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def ws_url(self, panel_id: str, user: str | None = "alice", workspace: str = "acme",
               server: Server | None = None) -> str:
        url = f"{(server or self.server).ws_url}/ws/workspaces/{workspace}/panels/{panel_id}/"
        return f"{url}?token={self.tokens[user]}" if user else url

    async def connect(self, panel_id: str, user: str = "alice", server: Server | None = None) -> Any:
        socket = await websockets.connect(self.ws_url(panel_id, user, server=server), open_timeout=20)
        hello = json.loads(await socket.recv())
        assert hello["type"] == "CONNECTED", hello
        socket.hello = hello
        return socket


def example(name: str) -> str:
    return (EXAMPLES / f"{name}.nxml").read_text()


def start_live(tmp: Path, database_url: str, processes: int = 1, **settings: str) -> Live:
    env = base_env(DATABASE_URL=database_url, MAX_PANELS="50", REDIS_PREFIX=unique_prefix(), **settings)
    tokens = {
        "alice": provision(env, "alice", "acme"),
        "bob": provision(env, "bob", "other", migrate=False),
        "carol": provision(env, "carol", "acme", role="viewer", migrate=False),
        "dave": provision(env, "dave", "acme", role="editor", migrate=False),
        "alice_other_ws": provision(env, "alice", "acme", claims={"workspace_id": "other"}, migrate=False),
        "alice_read_only": provision(env, "alice", "acme", claims={"permissions": ["panel:read"]}, migrate=False),
        "alice_kernel": provision(env, "alice", "acme", claims={"workspace_id": "acme"}, migrate=False),
    }
    servers = [start_server(env, tmp) for _ in range(processes)]
    return Live(servers[0], tokens, env, servers[1:])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    with scratch_database(tmp) as database:
        nexus = start_live(tmp, database.url, BODY_LIMIT="64kb", HEARTBEAT_SECONDS="1")
        try:
            nexus.create("counter", example("counter"))
            nexus.create("todo", example("todo"))
            nexus.create("slow", SLOW_PANEL)
            yield nexus
        finally:
            nexus.server.terminate()


async def receive_until(socket: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    """Skip heartbeats and other frames until one of ``kind`` arrives."""
    import asyncio

    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] == "PING":
                await socket.send(json.dumps({"type": "PONG"}))
            if frame["type"] == kind:
                return frame
            if frame["type"] == "ERROR" and kind in ("RESULT", "PROGRESS"):
                raise AssertionError(f"expected {kind}, got {frame}")

    return await asyncio.wait_for(wait(), timeout)


async def receive_kinds(socket: Any, kinds: set[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
    """The first frame of each kind, in whatever order they come (RESULT may precede PATCH/EVENT)."""
    import asyncio

    found: dict[str, dict[str, Any]] = {}

    async def wait() -> None:
        while set(found) != kinds:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] == "PING":
                await socket.send(json.dumps({"type": "PONG"}))
            if frame["type"] in kinds and frame["type"] not in found:
                found[frame["type"]] = frame

    await asyncio.wait_for(wait(), timeout)
    return found


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Two server processes on one database, sharing Redis (a module may define its own pair)."""
    tmp = tmp_path_factory.mktemp("pair")
    with redis_server() as redis_url, scratch_database(tmp) as database:
        assert redis_url, "these tests need redis-server on this machine or REDIS_URL"
        live = start_live(tmp, database.url, processes=2, REDIS_URL=redis_url)
        try:
            yield live
        finally:
            for server in [live.server, *live.extra_servers]:
                server.terminate()
