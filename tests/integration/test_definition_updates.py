"""An update in place reaches every open socket of the panel, on both of two processes over Redis.

Each socket gets DEFINITION (the new title, view and tools) and then the PATCH of the state
migration, keeps its connection, and can trigger a tool the new source added.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.integration.conftest import Live, example, receive_until

pytestmark = pytest.mark.slow

PANEL_URL = "/api/v1/workspaces/acme/panels/live-edit/"


def with_greeting(source: str) -> str:
    """The counter with a new title, a new string key, a tool that writes it and a button for it."""
    return (
        source.replace('title="Counter"', 'title="Greeter"')
        .replace("</Data>", '  <State name="greeting" type="string" default="hello" />\n  </Data>')
        .replace("</Logic>", '  <Tool name="greet"><Handler>$state.greeting = "hi there";</Handler></Tool>\n'
                             "  </Logic>")
        .replace('<Button label="Reset"', '<Button label="Greet" trigger="greet" />\n        <Button label="Reset"')
    )


async def frames_until_patch(socket: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Every frame (heartbeats aside) up to and including the first PATCH."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while not seen or seen[-1]["type"] != "PATCH":
            frame = json.loads(await socket.recv())
            if frame["type"] == "PING":
                await socket.send(json.dumps({"type": "PONG"}))
            elif frame["type"] not in ("PONG", "STATUS"):
                seen.append(frame)

    await asyncio.wait_for(read(), timeout)
    return seen


async def test_both_processes_send_definition_then_the_migration_patch(pair: Live) -> None:
    source = example("counter")
    pair.create("live-edit", source)
    here = await pair.connect("live-edit")
    there = await pair.connect("live-edit", server=pair.extra_servers[0])
    version = here.hello["stateVersion"]

    response = await asyncio.to_thread(pair.api, "PATCH", PANEL_URL, user="dave",
                                       json={"source": with_greeting(source), "baseRevision": 1})
    assert response.status_code == 200, response.text
    assert response.json()["migration"]["added"] == ["greeting"]

    for socket in (here, there):
        definition, patch = await frames_until_patch(socket)
        assert definition["type"] == "DEFINITION"
        assert definition["revision"] == 2 and definition["title"] == "Greeter"
        assert "greet" in {tool["name"] for tool in definition["tools"]}
        assert '"Greet"' in json.dumps(definition["view"])
        assert patch["stateVersion"] == version + 1
        assert {m["key"]: m["value"] for m in patch["mutations"]} == {"greeting": "hello"}

    await there.send(json.dumps({"type": "TRIGGER", "tool": "greet", "args": {}, "requestId": "g1"}))
    result = await receive_until(there, "RESULT", timeout=30)
    assert result["status"] == "success", result
    pushed = await receive_until(here, "PATCH", timeout=30)
    assert pushed["mutations"] == [{"key": "greeting", "value": "hi there", "operation": "set"}]
    for socket in (here, there):
        await socket.close()


async def test_an_update_that_changes_no_state_sends_definition_only(pair: Live) -> None:
    source = example("counter")
    pair.create("retitle", source)
    socket = await pair.connect("retitle", server=pair.extra_servers[0])
    retitled = source.replace('title="Counter"', 'title="Tally"')
    response = await asyncio.to_thread(pair.api, "PATCH", "/api/v1/workspaces/acme/panels/retitle/",
                                       json={"source": retitled})
    assert response.status_code == 200 and response.json()["stateVersion"] == socket.hello["stateVersion"]
    definition = await receive_until(socket, "DEFINITION", timeout=30)
    assert definition["title"] == "Tally" and definition["revision"] == 2
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "i1"}))
    patch = await receive_until(socket, "PATCH", timeout=30)
    assert patch["stateVersion"] == socket.hello["stateVersion"] + 1
    await socket.close()
