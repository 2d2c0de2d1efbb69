"""The three sample panels over REST: they load, mount, run each tool, and Computed keys follow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.api.conftest import COUNTER, MONITOR, TODO, World
from workspaces.models import Panel
from workspaces.services import panels as panel_service

PANELS = "/api/v1/workspaces/ws/panels"


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/health" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "healthy"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def service_url(monkeypatch: Any) -> Iterator[str]:
    """A local service for the monitor to check; loopback is allowed for these tests only."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    from workspaces.services import extensions

    original = extensions.extension_settings
    monkeypatch.setattr(
        extensions, "extension_settings", lambda: {**original(), "HTTP_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"}
    )
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def create(client: Any, panel_id: str, source: str, **extra: Any) -> dict[str, Any]:
    response = client.post(f"{PANELS}/", {"id": panel_id, "source": source, **extra}, format="json")
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    assert body["status"] == "ok"
    return body


def run(client: Any, panel_id: str, tool: str, **args: Any) -> dict[str, Any]:
    response = client.post(f"{PANELS}/{panel_id}/tools/{tool}/", {"args": args}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", body
    return body


def state(client: Any, panel_id: str) -> dict[str, Any]:
    return dict(client.get(f"{PANELS}/{panel_id}/state/").json()["state"])


def changed(body: dict[str, Any]) -> dict[str, Any]:
    return {m["key"]: m.get("value") for m in body["mutations"] if m["operation"] == "set"}


def test_counter(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.editor)
    assert create(client, "counter2", COUNTER)["initialState"] == {"count": 0, "double": 0}
    first = run(client, "counter2", "increment")
    assert changed(first) == {"count": 1, "double": 2}
    assert first["events"] == [{"name": "changed", "payload": 1}]
    assert changed(run(client, "counter2", "increment", by=5)) == {"count": 6, "double": 12}
    assert state(client, "counter2") == {"count": 6, "double": 12}
    assert changed(run(client, "counter2", "reset")) == {"count": 0, "double": 0}
    assert client.get(f"{PANELS}/counter2/state/").json()["stateVersion"] == 3


def test_todo(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.editor)
    assert create(client, "todo", TODO)["initialState"] == {"todos": [], "input": "", "nextId": 1, "itemCount": 0}
    empty = run(client, "todo", "add")
    assert empty["returnValue"] is None and empty["events"][0]["name"] == "toast"
    panel = Panel.objects.select_related("workspace").get(panel_id="todo")
    for text in ("write tests", "ship"):
        # The browser fills the input with a SET frame; the service call is the same.
        async_to_sync(panel_service.set_value)(panel, "input", text)
        added = run(client, "todo", "add")
        assert added["returnValue"] == (1 if text == "write tests" else 2)
    assert state(client, "todo")["itemCount"] == 2
    toggled = run(client, "todo", "toggle", id=1)
    assert changed(toggled)["todos"][0] == {"id": 1, "text": "write tests", "done": True}
    removed = run(client, "todo", "remove", id=1)
    assert changed(removed)["itemCount"] == 1
    assert state(client, "todo") == {
        "todos": [{"id": 2, "text": "ship", "done": False}], "input": "", "nextId": 3, "itemCount": 1,
    }


def test_monitor(world: World, api_client_for: Any, service_url: str) -> None:
    client = api_client_for(world.editor)
    initial = create(client, "monitor", MONITOR, extensions={"http": {"baseURL": service_url}})["initialState"]
    assert initial == {"status": "unknown", "target": "/health", "loading": False, "logs": [], "history": []}
    checked = run(client, "monitor", "checkHealth")
    assert checked["returnValue"] == "online"
    after = state(client, "monitor")
    assert after["status"] == "online" and after["loading"] is False
    assert len(after["logs"]) == 1 and after["logs"][0].endswith(" GET /health 200")
    assert len(after["history"]) == 1
    assert changed(run(client, "monitor", "clearLogs")) == {"logs": []}


def test_monitor_reports_an_unreachable_service(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.editor)
    # Loopback is refused by default: the handler catches the error and reports offline.
    create(client, "monitor", MONITOR, extensions={"http": {"baseURL": "http://127.0.0.1:9"}})
    checked = run(client, "monitor", "checkHealth")
    assert checked["returnValue"] == "offline"
    assert checked["events"][0]["name"] == "toast"
    assert state(client, "monitor")["loading"] is False


def test_the_contract_examples_still_run(world: World, api_client_for: Any, service_url: str) -> None:
    """The demo panels may improve on the contract's examples; the examples themselves keep working."""
    from tests.nxml.test_nxml_samples import SHARED

    client = api_client_for(world.editor)
    for path in sorted(SHARED.glob("*.nxml")):
        panel_id = f"shared-{path.stem}"
        source = path.read_text(encoding="utf-8")
        extensions = {"http": {"baseURL": service_url}} if 'alias="http"' in source else {}
        create(client, panel_id, source, extensions=extensions)
        tools = client.get(f"{PANELS}/{panel_id}/").json()["tools"]
        for tool in tools:
            if not tool["argsSchema"]["required"]:
                run(client, panel_id, tool["name"])
