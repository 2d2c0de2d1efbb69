"""Handlers calling nexus.http while suspended, end to end: live server, WebSocket, local HTTP target."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.conftest import Live, example, receive_kinds, receive_until, start_live
from tests.support.servers import free_port, manage, scratch_database

pytestmark = pytest.mark.slow


class Target:
    """A local HTTP service whose /health answer waits until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hits: list[str] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.hits.append(self.path)
                if self.path == "/health":
                    target.release.wait(15)
                    self._reply(200, {"ok": True})
                elif self.path.startswith("/item/"):
                    self._reply(200, {"id": int(self.path.rsplit("/", 1)[1]), "price": 5})
                else:
                    self._reply(503, {"error": "down"})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


TWO_CALLS = """<NexusPanel id="shop" title="Shop">
  <Data><State name="total" type="number" default="0" /><State name="note" type="string" default="" /></Data>
  <Logic>
    <Extension name="nexus.http" alias="http" />
    <Tool name="sum">
      <Handler>
        const a = await $ext.http.get('/item/1');
        $state.note = 'first done';
        const b = await $ext.http.get('/item/2');
        $state.total = a.data.price + b.data.price + a.data.id + b.data.id;
        return $state.total;
      </Handler>
    </Tool>
    <Tool name="careful">
      <Handler>
        const out = [];
        try { await $ext.nope.get('/x'); } catch (e) { out.push(e.message); }
        try { await $ext.http.frobnicate('/x'); } catch (e) { out.push(e.message); }
        try { await $ext.http.get('http://169.254.169.254/latest/meta-data/'); } catch (e) { out.push(e.message); }
        const r = await $ext.http.get('/broken');
        out.push(r.status);
        return out;
      </Handler>
    </Tool>
  </Logic>
  <View><Metric label="Total" value="{$state.total}" /></View>
</NexusPanel>"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, Target]]:
    tmp = tmp_path_factory.mktemp("ext")
    target = Target()
    with scratch_database(tmp) as database:
        live = start_live(tmp, database.url, HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1", HTTP_TIMEOUT="5000")
        try:
            for panel_id, source in (("monitor", example("monitor")), ("shop", TWO_CALLS)):
                response = live.api("POST", "/api/v1/workspaces/acme/panels/", json={
                    "id": panel_id, "source": source, "extensions": {"http": {"baseURL": target.url}}})
                assert response.status_code == 201, response.text
            yield live, target
        finally:
            live.server.terminate()
            target.close()


async def test_monitor_spinner_shows_before_the_call_completes(setup: tuple[Live, Target]) -> None:
    live, target = setup
    target.release.clear()
    actor = await live.connect("monitor")
    watcher = await live.connect("monitor")
    await actor.send(json.dumps({"type": "TRIGGER", "tool": "checkHealth", "args": {}, "requestId": "m1"}))
    progress = await receive_until(actor, "PROGRESS")
    assert progress["status"] == "executing" and progress["requestId"] == "m1"
    assert {"key": "loading", "value": True, "operation": "set"} in progress["mutations"]
    spinner = await receive_until(watcher, "PATCH")
    assert {"key": "loading", "value": True, "operation": "set"} in spinner["mutations"]
    assert not target.release.is_set()  # the HTTP call is still waiting
    target.release.set()
    done = await receive_until(watcher, "PATCH")
    changed = {m["key"]: m.get("value") for m in done["mutations"]}
    assert changed["loading"] is False and changed["status"] == "online"
    assert done["stateVersion"] == spinner["stateVersion"] + 1
    result = await receive_until(actor, "RESULT")
    assert (result["status"], result["returnValue"]) == ("success", "online")
    await actor.close()
    await watcher.close()


async def test_failed_call_is_caught_by_the_handler(setup: tuple[Live, Target]) -> None:
    live, _ = setup
    closed = socket.socket()  # bound but not listening: connections are refused, and no one else gets the port
    closed.bind(("127.0.0.1", 0))
    response = await asyncio.to_thread(live.api, "POST", "/api/v1/workspaces/acme/panels/", json={
        "id": "monitor-down", "source": example("monitor"),
        "extensions": {"http": {"baseURL": f"http://127.0.0.1:{closed.getsockname()[1]}"}}})
    assert response.status_code == 201
    client = await live.connect("monitor-down")
    await client.send(json.dumps({"type": "TRIGGER", "tool": "checkHealth", "requestId": "d1"}))
    frames = await receive_kinds(client, {"EVENT", "RESULT"})
    toast, result = frames["EVENT"], frames["RESULT"]
    assert toast["name"] == "toast" and toast["payload"]["type"] == "error" and toast["payload"]["message"]
    assert (result["status"], result["returnValue"]) == ("success", "offline")
    await client.close()
    closed.close()


async def test_two_suspensions_in_one_handler(setup: tuple[Live, Target]) -> None:
    live, _ = setup
    socket = await live.connect("shop")
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "sum", "requestId": "s1"}))
    first = await receive_until(socket, "PROGRESS")
    second = await receive_until(socket, "PROGRESS")
    assert {"key": "note", "value": "first done", "operation": "set"} in second["mutations"]
    assert first["message"] != "" and second["message"] != ""
    result = await receive_until(socket, "RESULT")
    assert (result["status"], result["returnValue"]) == ("success", 13)
    await socket.close()


async def test_refusals_reach_the_handler_as_catchable_errors(setup: tuple[Live, Target]) -> None:
    live, _ = setup
    response = await asyncio.to_thread(live.api, "POST", "/api/v1/workspaces/acme/panels/shop/tools/careful/",
                                       json={"args": {}})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", body
    missing, unknown, metadata, status = body["returnValue"]
    assert missing == "Extension 'nope' not found"
    assert "frobnicate" in unknown
    assert "169.254.169.254" in metadata
    assert status == 503


def test_extension_calls_are_audited_and_counted(setup: tuple[Live, Target]) -> None:
    live, _ = setup
    script = ("from workspaces.models import AuditRecord as A; "
              "print('AUDIT', A.objects.filter(action__startswith='nexus.http').count(), "
              "A.objects.filter(outcome='denied').count())")
    out = manage("shell", "-c", script, env=live.env).stdout
    line = next(line for line in out.splitlines() if line.startswith("AUDIT"))
    calls, denied = map(int, line.split()[1:])
    assert calls >= 4 and denied >= 1
    metrics = live.metrics()
    assert 'nexus_ext_calls_total{extension="nexus.http",method="get",status="success"}' in metrics
    assert 'nexus_ext_calls_total{extension="nexus.http",method="get",status="denied"}' in metrics


async def test_a_waiting_rest_trigger_does_not_hold_up_other_requests(setup: tuple[Live, Target]) -> None:
    live, target = setup
    target.release.clear()
    calls_before = target.hits.count("/health")
    pending = asyncio.create_task(asyncio.to_thread(
        live.api, "POST", "/api/v1/workspaces/acme/panels/monitor/tools/checkHealth/", json={"args": {}}))
    while target.hits.count("/health") == calls_before:  # then the trigger's call waits for the release
        await asyncio.sleep(0.02)
    others = [
        await asyncio.to_thread(live.api, "GET", "/health/live"),
        await asyncio.to_thread(live.api, "GET", "/api/v1/workspaces/acme/panels/shop/state/"),
        await asyncio.to_thread(live.api, "POST", "/api/v1/workspaces/acme/panels/shop/tools/sum/", json={}),
    ]
    assert not pending.done() and not target.release.is_set()
    assert [response.status_code for response in others] == [200, 200, 200]
    target.release.set()
    answer = await pending
    assert answer.status_code == 200 and answer.json()["returnValue"] == "online", answer.text
