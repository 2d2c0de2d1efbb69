"""Who receives a handler's events: its requester, or every viewer for events declared broadcast."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.integration.conftest import Live, receive_kinds, receive_until

pytestmark = pytest.mark.slow

NOTIFY_PANEL = """<NexusPanel id="notify" title="Notify">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Event name="announce" broadcast="true" description="Every viewer sees it" />
    <Tool name="ping">
      <Handler>
        $state.n = $state.n + 1;
        $emit('toast', { type: 'info', message: 'only for you' });
        $emit('announce', $state.n);
        return $state.n;
      </Handler>
    </Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


@pytest.fixture(scope="module")
def notify(live: Live) -> str:
    live.create("notify", NOTIFY_PANEL)
    return "notify"


async def frames_until(socket: Any, done: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Every frame until ``done(frames so far)`` holds."""
    seen: list[dict[str, Any]] = []

    async def wait() -> None:
        while not done(seen):
            seen.append(json.loads(await socket.recv()))

    await asyncio.wait_for(wait(), timeout)
    return seen


def event_names(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["name"] for frame in frames if frame["type"] == "EVENT"]


async def frames_until_event(socket: Any, name: str) -> list[dict[str, Any]]:
    return await frames_until(socket, lambda seen: name in event_names(seen))


async def test_requester_alone_gets_its_events_and_everyone_the_broadcast_ones(live: Live, notify: str) -> None:
    actor = await live.connect(notify)
    watcher = await live.connect(notify)
    await actor.send(json.dumps({"type": "TRIGGER", "tool": "ping", "requestId": "p1"}))
    mine = await frames_until(actor, lambda seen: {"toast", "announce"} <= set(event_names(seen))
                              and any(f["type"] == "RESULT" for f in seen))
    result = next(f for f in mine if f["type"] == "RESULT")
    assert [e["name"] for e in result["events"]] == ["toast", "announce"]
    assert sorted(event_names(mine)) == ["announce", "toast"]
    toast = next(f for f in mine if f["type"] == "EVENT" and f["name"] == "toast")
    assert toast["payload"] == {"type": "info", "message": "only for you"}
    # The commit reaches the watcher as PATCH, then its events in order: the toast (emitted
    # first) would have come before the broadcast one.
    theirs = await frames_until_event(watcher, "announce")
    assert "PATCH" in [f["type"] for f in theirs]
    assert event_names(theirs) == ["announce"]
    await actor.close()
    await watcher.close()


async def test_rest_trigger_events_reach_no_socket_unless_broadcast(live: Live, notify: str) -> None:
    watcher = await live.connect(notify)
    response = await asyncio.to_thread(live.api, "POST", f"/api/v1/workspaces/acme/panels/{notify}/tools/ping/",
                                       json={"args": {}})
    assert response.status_code == 200, response.text
    assert [e["name"] for e in response.json()["events"]] == ["toast", "announce"]
    theirs = await frames_until_event(watcher, "announce")
    assert event_names(theirs) == ["announce"]
    await watcher.close()


async def test_stop_and_start_reach_open_sockets_as_status(live: Live) -> None:
    live.create("lifecycle", NOTIFY_PANEL.replace('id="notify"', 'id="lifecycle"'))
    socket = await live.connect("lifecycle")
    assert socket.hello["status"] == "running"
    stopped = await asyncio.to_thread(live.api, "POST", "/api/v1/workspaces/acme/panels/lifecycle/stop/")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
    assert (await receive_until(socket, "STATUS"))["status"] == "stopped"
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "ping", "requestId": "s1"}))
    refused = await receive_until(socket, "ERROR")
    assert (refused["code"], refused["requestId"]) == ("INVALID_REQUEST", "s1")
    started = await asyncio.to_thread(live.api, "POST", "/api/v1/workspaces/acme/panels/lifecycle/start/")
    assert started.json() == {"panelId": "lifecycle", "status": "running", "error": None}
    assert (await receive_until(socket, "STATUS"))["status"] == "running"
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "ping", "requestId": "s2"}))
    frames = await receive_kinds(socket, {"RESULT"})
    assert frames["RESULT"]["status"] == "success"
    await socket.close()
