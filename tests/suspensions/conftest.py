"""A held local service, a workspace with panels that wait on it, and a way to stop a handler at its first await."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.api.conftest import MONITOR


@dataclass
class HeldService:
    """Answers 200 to every request once released; counts the requests it got."""

    url: str
    release: threading.Event
    requests: list[str] = field(default_factory=list)


def held_service() -> tuple[ThreadingHTTPServer, HeldService]:
    release = threading.Event()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            key = self.headers.get("Idempotency-Key")
            requests.append(f"{self.command} {self.path}" + (f" key={key}" if key else ""))
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server, HeldService(f"http://127.0.0.1:{server.server_address[1]}", release, requests)


@pytest.fixture
def service(monkeypatch: Any) -> Iterator[HeldService]:
    server, held = held_service()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    from workspaces.services import extensions

    original = extensions.extension_settings
    monkeypatch.setattr(
        extensions, "extension_settings", lambda: {**original(), "HTTP_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"}
    )
    try:
        yield held
    finally:
        held.release.set()
        server.shutdown()
        server.server_close()


def _handler_panel(panel_id: str, handler: str) -> str:
    return f"""<NexusPanel id="{panel_id}" title="Caller">
  <Data>
    <State name="code" type="string" default="" />
    <State name="result" type="string" default="" />
    <State name="loading" type="boolean" default="false" />
  </Data>
  <Logic>
    <Extension name="nexus.http" alias="http" />
    <Tool name="call">
      <Capabilities>
        <Capability type="state:read" scope="*" />
        <Capability type="state:write" scope="*" />
        <Capability type="ext:http" scope="*" />
      </Capabilities>
      <Handler>
        $state.loading = true;
        try {{
          {handler}
          $state.result = 'answered';
        }} catch (e) {{
          $state.code = String(e.code);
        }} finally {{
          $state.loading = false;
        }}
      </Handler>
    </Tool>
  </Logic>
  <View><Text content="{{$state.code}}" /></View>
</NexusPanel>"""


POSTING = _handler_panel("poster", "await $ext.http.post('/orders', {json: {n: 1}});")
GETTING = _handler_panel("getter", "await $ext.http.get('/status');")


@dataclass
class Stopped:
    """A handler run up to its first await, as a process that then died would leave it."""

    run: Any
    suspension_id: str


def start_only(panel: Any, tool: str = "call") -> Stopped:
    """Run the handler's first segment (committed, row stored) and never perform its call."""
    from workspaces.services.panels.definitions import definition_of
    from workspaces.services.panels.execution import _handler_run
    from workspaces.services.panels.segments import run_segment

    definition = definition_of(panel)
    handler = definition.tool(tool)
    assert handler is not None
    run = _handler_run(panel, definition, tool, handler.handler.code, definition.tool_capabilities(tool), {}, None,
                       "tester")
    result, _, failure = async_to_sync(run_segment)(run, None)
    assert failure is None and result.status == "suspended", (result, failure)
    assert result.suspension is not None
    return Stopped(run, str(result.suspension["suspension_id"]))


def create_panel(workspace: Any, source: str, panel_id: str, service: HeldService) -> Any:
    from workspaces.services.panels import create_panel as service_create

    panel, _ = async_to_sync(service_create)(
        workspace, source, panel_id=panel_id, extension_config={"http": {"baseURL": service.url}}
    )
    return panel


@pytest.fixture
def workspace(transactional_db: None, make_user, make_workspace) -> Any:  # type: ignore[no-untyped-def]
    owner = make_user("olivia")
    return make_workspace("ws", {owner: "owner"})


__all__ = ["GETTING", "MONITOR", "POSTING"]
