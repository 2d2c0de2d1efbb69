"""Sockets leave a draining or long-lived connection with a reconnect hint (RECONNECT, then close 1012)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from websockets.exceptions import ConnectionClosed

from nexus import lifecycle
from tests.integration.conftest import SLOW_PANEL, receive_until, start_live
from tests.support.servers import scratch_database
from workspaces.consumers import CLOSE_RECONNECT, PanelConsumer


async def _sent_away(socket: Any, timeout: float) -> tuple[dict[str, Any], int, list[str]]:
    """Frames until the close: the RECONNECT hint, the close code, and the kinds seen before."""
    seen: list[str] = []
    hint: dict[str, Any] = {}
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await socket.recv())
                seen.append(frame["type"])
                if frame["type"] == "RECONNECT":
                    hint = frame
    assert closed.value.rcvd is not None, "closed without a close frame"
    return hint, closed.value.rcvd.code, seen


@pytest.mark.slow
def test_sigterm_sends_sockets_away_spread_out_while_the_running_tool_finishes(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, SHUTDOWN_GRACE_SECONDS="10")
        try:
            live.create("slow", SLOW_PANEL)

            async def scenario() -> tuple[list[Any], Any]:
                idle = [await live.connect("slow") for _ in range(4)]
                busy = await live.connect("slow")
                await busy.send(json.dumps({"type": "TRIGGER", "tool": "spin", "args": {"ms": 2500},
                                            "requestId": "last"}))
                await asyncio.sleep(0.4)
                live.server.process.terminate()  # SIGTERM
                outcomes = await asyncio.gather(*(_sent_away(s, 20) for s in [*idle, busy]))
                return list(outcomes[:-1]), outcomes[-1]

            idle_outcomes, busy_outcome = asyncio.run(scenario())
            for hint, code, _seen in idle_outcomes:
                # 1012, not the 1001 that closes what is still open when the grace ends
                assert code == CLOSE_RECONNECT
                assert hint["reason"] == "draining" and 500 <= hint["retryAfterMs"] <= 2000
            hint, code, seen = busy_outcome
            assert code == CLOSE_RECONNECT and hint["reason"] == "draining"
            assert seen.index("RESULT") < seen.index("RECONNECT")  # the running request answered first
            assert live.server.process.wait(30) == 0
        finally:
            live.server.kill()
        reopened = start_live(tmp_path, database.url)
        try:
            async def state() -> Any:
                socket = await reopened.connect("slow")
                await socket.close()
                return socket.hello["state"]["n"]

            assert asyncio.run(state()) == 1  # the run that went on while sockets left was committed
        finally:
            reopened.server.kill()


@pytest.mark.slow
def test_a_socket_older_than_the_max_age_is_sent_away_and_reconnects_to_the_current_state(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, WS_MAX_CONNECTION_AGE="2s")
        try:
            live.create("slow", SLOW_PANEL)

            async def scenario() -> tuple[Any, int, dict[str, Any]]:
                socket = await live.connect("slow")
                await socket.send(json.dumps({"type": "TRIGGER", "tool": "spin", "args": {"ms": 10},
                                              "requestId": 1}))
                await receive_until(socket, "RESULT")
                hint, code, _ = await _sent_away(socket, 15)
                again = await live.connect("slow")
                await again.close()
                return hint, code, again.hello

            hint, code, hello = asyncio.run(scenario())
            assert code == CLOSE_RECONNECT and hint["reason"] == "max-age"
            assert hello["state"]["n"] == 1 and hello["stateVersion"] >= 1
        finally:
            live.server.kill()


async def test_a_socket_opening_during_a_drain_is_refused_with_the_hint() -> None:
    application = PanelConsumer.as_asgi()
    communicator = WebsocketCommunicator(application, "/ws/workspaces/acme/panels/counter/")
    communicator.scope["url_route"] = {"kwargs": {"workspace": "acme", "panel_id": "counter"}}
    lifecycle.start_draining()
    try:
        connected, _ = await communicator.connect()
        assert connected
        hint = await communicator.receive_json_from()
        assert hint["type"] == "RECONNECT" and hint["reason"] == "draining"
        closing = await communicator.receive_output()
        assert closing == {"type": "websocket.close", "code": CLOSE_RECONNECT}
    finally:
        lifecycle.reset()
        await communicator.disconnect()


def test_a_socket_whose_loop_is_gone_does_not_stop_a_drain() -> None:
    stale = PanelConsumer()
    stale.loop = asyncio.new_event_loop()
    stale.loop.close()
    assert lifecycle.watch_socket(stale)
    try:
        lifecycle.start_draining(spread_s=1.0)
        assert lifecycle.open_sockets() == 0
    finally:
        lifecycle.forget_socket(stale)
        lifecycle.reset()
