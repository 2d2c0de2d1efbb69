"""The WebSocket protocol against a real daphne server and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Live, receive_kinds, receive_until

pytestmark = pytest.mark.slow


async def closed_with(url: str, headers: dict[str, str] | None = None) -> int:
    socket = await websockets.connect(url, additional_headers=headers or {}, open_timeout=20)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code)


async def send(socket: Any, frame: dict[str, Any] | str) -> None:
    await socket.send(frame if isinstance(frame, str) else json.dumps(frame))


async def test_connected_first_with_state_and_version(live: Live) -> None:
    socket = await live.connect("counter")
    assert socket.hello["panelId"] == "counter"
    assert {"count", "double"} <= set(socket.hello["state"])
    assert isinstance(socket.hello["stateVersion"], int)
    await socket.close()


async def test_bearer_header_authenticates(live: Live) -> None:
    socket = await websockets.connect(live.ws_url("counter", None), additional_headers=live.headers(), open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    await socket.close()


@pytest.mark.parametrize(
    ("user", "panel", "query", "code"),
    [
        (None, "counter", "", 4401),
        (None, "counter", "?token=not-a-jwt", 4401),
        ("bob", "counter", None, 4404),  # not a member: the workspace stays invisible
        ("alice", "missing", None, 4404),
        ("alice_other_ws", "counter", None, 4403),  # token limited to another workspace
    ],
)
async def test_refusals_close_with_readable_codes(live: Live, user: str | None, panel: str, query: str | None,
                                                  code: int) -> None:
    url = live.ws_url(panel, user) if query is None else live.ws_url(panel, None) + query
    assert await closed_with(url) == code


def session_cookie(live: Live) -> str:
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={"username": "alice", "password": "bench-password",
                  "csrfmiddlewaretoken": client.cookies["csrftoken"]},
            headers={"Referer": f"{live.server.url}/accounts/login/"},
        )
        assert response.status_code in (200, 302)
        return str(client.cookies["sessionid"])


async def test_browser_session_authenticates_same_origin_only(live: Live) -> None:
    cookie = {"Cookie": f"sessionid={await asyncio.to_thread(session_cookie, live)}"}
    same = {**cookie, "Origin": live.server.url}
    socket = await websockets.connect(live.ws_url("counter", None), additional_headers=same, open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    await socket.close()
    evil = {**cookie, "Origin": "http://evil.example"}
    assert await closed_with(live.ws_url("counter", None), evil) == 4401


async def test_trigger_result_patch_reach_every_client_and_the_event_its_requester(live: Live) -> None:
    actor = await live.connect("counter")
    watcher = await live.connect("counter")
    before = actor.hello["stateVersion"]
    count = actor.hello["state"]["count"]
    await send(actor, {"type": "TRIGGER", "tool": "increment", "args": {"by": 2}, "requestId": "r1"})
    frames = await receive_kinds(actor, {"EVENT", "RESULT"})
    result = frames["RESULT"]
    assert result["requestId"] == "r1" and result["status"] == "success"
    assert result["returnValue"] == count + 2
    assert {"key": "count", "value": count + 2, "operation": "set"} in result["mutations"]
    assert result["events"] == [{"name": "changed", "payload": count + 2}]
    assert frames["EVENT"] == {"type": "EVENT", "name": "changed", "payload": count + 2}
    patch = await receive_until(watcher, "PATCH")
    assert patch["stateVersion"] == before + 1
    assert {"key": "double", "value": (count + 2) * 2, "operation": "set"} in patch["mutations"]
    # "changed" is not declared broadcast: the watcher's next frame is its answer to a PING.
    await send(watcher, {"type": "PING"})
    assert json.loads(await asyncio.wait_for(watcher.recv(), 10))["type"] == "PONG"
    await actor.close()
    await watcher.close()


async def test_patches_arrive_in_version_order_for_a_burst(live: Live) -> None:
    actor = await live.connect("counter")
    watcher = await live.connect("counter")
    start = watcher.hello["stateVersion"]
    for index in range(20):
        await send(actor, {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": index})
    versions = [(await receive_until(watcher, "PATCH"))["stateVersion"] for _ in range(20)]
    assert versions == list(range(start + 1, start + 21))
    await actor.close()
    await watcher.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "INVALID_MESSAGE"),
        ("[1, 2, 3]", "INVALID_MESSAGE"),
        ({"no": "type"}, "INVALID_MESSAGE"),
        ({"type": "DANCE"}, "INVALID_MESSAGE"),
        ({"type": "TRIGGER", "requestId": "x"}, "INVALID_MESSAGE"),
        ({"type": "TRIGGER", "tool": "increment"}, "INVALID_MESSAGE"),
        ({"type": "TRIGGER", "tool": 5, "requestId": "x"}, "INVALID_MESSAGE"),
        ({"type": "TRIGGER", "tool": "increment", "args": [1], "requestId": "x"}, "INVALID_MESSAGE"),
        ({"type": "TRIGGER", "tool": "nope", "requestId": "x"}, "TOOL_NOT_FOUND"),
        ({"type": "TRIGGER", "tool": "increment", "args": {"by": "two"}, "requestId": "x"}, "INVALID_ARGS"),
        ({"type": "TRIGGER", "tool": "increment", "args": {"zzz": 1}, "requestId": "x"}, "INVALID_ARGS"),
        ({"type": "SET", "value": 1}, "INVALID_MESSAGE"),
        ({"type": "SET", "key": "count", "value": 1}, "INVALID_REQUEST"),  # not bound by an Input
        ({"type": "SUBSCRIBE", "keys": "count"}, "INVALID_MESSAGE"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_open(live: Live, frame: Any, code: str) -> None:
    socket = await live.connect("counter")
    await send(socket, frame)
    error = await receive_until(socket, "ERROR")
    assert error["code"] == code
    assert error["message"]
    await send(socket, {"type": "PING"})
    assert (await receive_until(socket, "PONG"))["type"] == "PONG"
    await socket.close()


async def test_binary_frames_are_refused_politely(live: Live) -> None:
    socket = await live.connect("counter")
    await socket.send(b"\x00\x01")
    assert (await receive_until(socket, "ERROR"))["code"] == "INVALID_MESSAGE"
    await socket.close()


async def test_oversized_frame_closes_with_1009(live: Live) -> None:
    socket = await live.connect("counter")
    await send(socket, {"type": "PING", "pad": "x" * 70_000})
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(10):
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_set_is_type_checked_and_fans_out(live: Live) -> None:
    actor = await live.connect("todo")
    watcher = await live.connect("todo")
    await send(actor, {"type": "SET", "key": "input", "value": 42, "requestId": "bad"})
    assert (await receive_until(actor, "ERROR"))["code"] == "INVALID_REQUEST"  # as docs/protocol.md says
    await send(actor, {"type": "SET", "key": "input", "value": "milk", "requestId": "s1"})
    assert (await receive_until(actor, "RESULT"))["requestId"] == "s1"
    patch = await receive_until(watcher, "PATCH")
    assert patch["mutations"] == [{"key": "input", "value": "milk", "operation": "set"}]
    await actor.close()
    await watcher.close()


async def test_subscribe_filters_patches_by_key(live: Live) -> None:
    actor = await live.connect("counter")
    watcher = await live.connect("counter")
    await send(watcher, {"type": "SUBSCRIBE", "keys": ["double"]})
    await send(actor, {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "f1"})
    patch = await receive_until(watcher, "PATCH")
    assert [m["key"] for m in patch["mutations"]] == ["double"]
    await send(watcher, {"type": "UNSUBSCRIBE", "keys": ["double"]})
    await send(watcher, {"type": "SUBSCRIBE", "keys": ["count"]})
    await send(actor, {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "f2"})
    patch = await receive_until(watcher, "PATCH")
    assert [m["key"] for m in patch["mutations"]] == ["count"]
    await actor.close()
    await watcher.close()


async def test_server_heartbeat_and_silent_clients_are_closed(live: Live) -> None:
    socket = await live.connect("counter")
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "PING"
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(20):
            await asyncio.wait_for(socket.recv(), 5)  # never answer: two missed heartbeats
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_rest_trigger_reaches_websocket_clients(live: Live) -> None:
    watcher = await live.connect("counter")
    response = await asyncio.to_thread(
        live.api, "POST", "/api/v1/workspaces/acme/panels/counter/tools/increment/", json={"args": {"by": 3}}
    )
    assert response.status_code == 200 and response.json()["status"] == "success"
    patch = await receive_until(watcher, "PATCH")
    assert patch["stateVersion"] == watcher.hello["stateVersion"] + 1
    await watcher.close()


async def test_reconnecting_client_gets_the_current_state(live: Live) -> None:
    first = await live.connect("counter")
    await send(first, {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "c1"})
    result = await receive_until(first, "RESULT")
    await first.close()
    again = await live.connect("counter")
    assert again.hello["stateVersion"] >= result["stateVersion"]
    assert again.hello["state"]["count"] >= result["returnValue"]
    await again.close()


async def test_handler_error_is_a_result_not_a_crash(live: Live) -> None:
    socket = await live.connect("slow")
    await send(socket, {"type": "TRIGGER", "tool": "spin", "args": {"ms": 0}, "requestId": "e0"})
    version = (await receive_until(socket, "RESULT"))["stateVersion"]
    await send(socket, {"type": "TRIGGER", "tool": "fail", "requestId": "e1"})
    result = await receive_until(socket, "RESULT")
    assert result["status"] == "error" and result["error"]["code"] == "EXECUTION_ERROR"
    assert "boom" in result["error"]["message"]
    assert result["stateVersion"] == version >= 1  # the panel's version, not 0
    await socket.close()


async def test_a_slow_handler_does_not_block_other_panels(live: Live) -> None:
    slow = await live.connect("slow")
    fast = await live.connect("counter")
    await send(slow, {"type": "TRIGGER", "tool": "spin", "args": {"ms": 2000}, "requestId": "slow"})
    await asyncio.sleep(0.2)
    await send(fast, {"type": "PING"})
    await receive_until(fast, "PONG", timeout=1.5)
    await send(fast, {"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "fast"})
    await receive_until(fast, "RESULT", timeout=1.5)
    # The slow one is still running: its result comes afterwards.
    assert (await receive_until(slow, "RESULT"))["status"] == "success"
    await slow.close()
    await fast.close()


async def test_viewer_may_watch_but_not_trigger(live: Live) -> None:
    socket = await live.connect("counter", user="carol")
    await send(socket, {"type": "TRIGGER", "tool": "increment", "requestId": "v1"})
    error = await receive_until(socket, "ERROR")
    assert (error["code"], error["requestId"]) == ("FORBIDDEN", "v1")
    await socket.close()


async def test_kernel_path_uses_the_token_workspace(live: Live) -> None:
    url = f"{live.server.ws_url}/panels/counter/ws?token={live.tokens['alice_kernel']}"
    socket = await websockets.connect(url, open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    await socket.close()


async def test_deleting_a_panel_closes_its_sockets(live: Live) -> None:
    live.create("doomed", _tiny_panel("doomed"))
    socket = await live.connect("doomed")
    response = await asyncio.to_thread(live.api, "DELETE", "/api/v1/workspaces/acme/panels/doomed/")
    assert response.status_code == 204
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(10):
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def _tiny_panel(panel_id: str) -> str:
    return (f'<NexusPanel id="{panel_id}" title="Tiny"><Data><State name="n" type="number" default="0"/></Data>'
            '<Logic><Tool name="inc"><Handler>$state.n = $state.n + 1;</Handler></Tool></Logic>'
            '<View><Text content="{$state.n}"/></View></NexusPanel>')
