"""The MCP endpoint against a live daphne server, with the official MCP client."""

from __future__ import annotations

import json

import httpx
from mcp import types
from mcp.shared.exceptions import McpError

from tests.integration.conftest import Live, example, receive_until
from tests.mcp.conftest import Notifications, mcp_session, mcp_url
from tests.support.servers import provision

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def by_name(listed: types.ListToolsResult) -> dict[str, types.Tool]:
    return {tool.name: tool for tool in listed.tools}


async def test_initialize_names_the_server_and_describes_the_workspace(live: Live) -> None:
    async with mcp_session(live) as session:
        hello = await session.initialize()
    assert hello.serverInfo.name == "nexus"
    assert hello.capabilities.tools is not None and hello.capabilities.tools.listChanged
    assert hello.capabilities.resources is not None and hello.capabilities.resources.subscribe
    assert "counter: Counter (tools: increment, reset)" in (hello.instructions or "")
    assert "monitor: Service Monitor (tools: checkHealth, clearLogs)" in (hello.instructions or "")


async def test_tools_of_the_samples_with_descriptions_and_arg_schemas(live: Live) -> None:
    async with mcp_session(live) as session:
        await session.initialize()
        tools = by_name(await session.list_tools())
    assert {"counter__increment", "counter__reset", "monitor__checkHealth", "monitor__clearLogs"} <= set(tools)
    increment = tools["counter__increment"]
    assert increment.description == "Add to the counter"
    assert increment.inputSchema == {
        "type": "object", "properties": {"by": {"type": "number", "default": 1}}, "required": [],
        "additionalProperties": False,
    }
    assert tools["monitor__checkHealth"].description == "Ping the service and record its status"
    assert tools["counter__reset"].inputSchema["properties"] == {}


async def test_a_call_changes_the_count_in_the_result_the_state_and_on_an_open_socket(live: Live) -> None:
    before = live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    socket = await live.connect("counter")
    async with mcp_session(live) as session:
        await session.initialize()
        result = await session.call_tool("counter__increment", {"by": 2})
    assert not result.isError
    body = result.structuredContent
    assert body is not None and body["status"] == "success"
    assert body["returnValue"] == before["state"]["count"] + 2
    assert json.loads(result.content[0].text) == body  # type: ignore[union-attr]
    patch = await receive_until(socket, "PATCH")
    assert patch["stateVersion"] == body["stateVersion"]
    assert {"key": "count", "value": before["state"]["count"] + 2, "operation": "set"} in patch["mutations"]
    await socket.close()
    after = live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    assert after["state"]["count"] == before["state"]["count"] + 2
    assert after["stateVersion"] == body["stateVersion"]


async def test_invalid_args_are_an_error_result_with_invalid_args(live: Live) -> None:
    async with mcp_session(live) as session:
        await session.initialize()
        wrong_type = await session.call_tool("counter__increment", {"by": "two"})
        unknown = await session.call_tool("counter__increment", {"step": 1})
        missing_tool = await session.call_tool("counter__explode", {})
    for result in (wrong_type, unknown):
        assert result.isError
        assert result.structuredContent is not None
        assert result.structuredContent["error"]["code"] == "INVALID_ARGS"
    assert "argument 'by' must be a number" in wrong_type.structuredContent["error"]["message"]  # type: ignore[index]
    assert missing_tool.isError and missing_tool.structuredContent["error"]["code"] == "TOOL_NOT_FOUND"  # type: ignore[index]


async def test_a_handler_error_is_an_error_result_with_its_code(live: Live) -> None:
    live.create("failing", FAILING)
    async with mcp_session(live) as session:
        await session.initialize()
        result = await session.call_tool("failing__boom", {})
    assert result.isError
    body = result.structuredContent
    assert body is not None and body["status"] == "error"
    assert body["error"]["code"] == "EXECUTION_ERROR" and "kaput" in body["error"]["message"]


async def test_state_and_source_resources(live: Live) -> None:
    state = live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    async with mcp_session(live) as session:
        await session.initialize()
        listed = {str(resource.uri) for resource in (await session.list_resources()).resources}
        read_state = await session.read_resource("nexus://workspaces/acme/panels/counter/state")  # type: ignore[arg-type]
        read_source = await session.read_resource("nexus://workspaces/acme/panels/counter/source")  # type: ignore[arg-type]
        templates = {template.uriTemplate for template in (await session.list_resource_templates()).resourceTemplates}
        try:
            await session.read_resource("nexus://workspaces/acme/panels/nowhere/state")  # type: ignore[arg-type]
            raise AssertionError("an unknown panel must be refused")
        except McpError as exc:
            assert exc.error.code == -32002 and "nowhere" in exc.error.message
        try:
            await session.read_resource("nexus://workspaces/other/panels/counter/state")  # type: ignore[arg-type]
            raise AssertionError("another workspace's resource must be refused")
        except McpError as exc:
            assert exc.error.code == -32602 and "this endpoint serves 'acme'" in exc.error.message
    assert templates == {"nexus://workspaces/acme/panels/{panelId}/state", "nexus://workspaces/acme/panels/{panelId}/source"}
    assert {"nexus://workspaces/acme/panels/counter/state", "nexus://workspaces/acme/panels/counter/source"} <= listed
    content = read_state.contents[0]
    assert content.mimeType == "application/json"
    assert json.loads(content.text) == {"panelId": "counter", **state}  # type: ignore[union-attr]
    assert read_source.contents[0].text == example("counter")  # type: ignore[union-attr]


async def test_a_viewer_lists_and_reads_but_a_call_is_refused(live: Live) -> None:
    before = live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    async with mcp_session(live, user="carol") as session:
        await session.initialize()
        assert "counter__increment" in by_name(await session.list_tools())
        await session.read_resource("nexus://workspaces/acme/panels/counter/state")  # type: ignore[arg-type]
        result = await session.call_tool("counter__increment", {"by": 2})
    assert result.isError
    assert result.structuredContent is not None and result.structuredContent["error"]["code"] == "FORBIDDEN"
    assert "panel:execute" in result.structuredContent["error"]["message"]
    after = live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    assert after["stateVersion"] == before["stateVersion"]


async def test_a_read_only_token_of_an_owner_cannot_call_either(live: Live) -> None:
    async with mcp_session(live, user="alice_read_only") as session:
        await session.initialize()
        result = await session.call_tool("counter__increment", {})
    assert result.isError and "Token does not grant panel:execute" in result.structuredContent["error"]["message"]  # type: ignore[index]


def test_no_or_bad_token_is_401_with_www_authenticate(live: Live) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = httpx.post(mcp_url(live), json=INITIALIZE, headers={**ACCEPT, **headers}, timeout=10)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
        assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_a_token_for_another_workspace_is_403_and_a_stranger_sees_404(live: Live) -> None:
    other = httpx.post(mcp_url(live), json=INITIALIZE, headers={**ACCEPT, **live.headers("alice_other_ws")}, timeout=10)
    assert other.status_code == 403 and other.json()["error"]["code"] == "FORBIDDEN"
    stranger = httpx.post(mcp_url(live), json=INITIALIZE, headers={**ACCEPT, **live.headers("bob")}, timeout=10)
    assert stranger.status_code == 404
    nowhere = httpx.post(f"{live.server.url}/mcp/nothing/", json=INITIALIZE, headers=ACCEPT, timeout=10)
    assert nowhere.status_code == 404 and "/mcp/workspaces/<slug>/" in nowhere.json()["error"]["message"]


async def test_a_suspended_call_sends_progress_when_asked(live: Live) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with mcp_session(live) as session:
        await session.initialize()
        result = await session.call_tool("monitor__checkHealth", {}, progress_callback=on_progress)
    assert not result.isError, result.structuredContent
    assert result.structuredContent is not None and result.structuredContent["returnValue"] == "online"
    assert progress and progress[0] == (1.0, "Waiting for http.get")


async def test_subscribers_hear_committed_changes_and_panel_list_changes(live: Live) -> None:
    notifications = Notifications()
    async with mcp_session(live, message_handler=notifications) as session:
        await session.initialize()
        await session.subscribe_resource("nexus://workspaces/acme/panels/counter/state")  # type: ignore[arg-type]
        updated = await notifications.after(
            lambda: live.api("POST", "/api/v1/workspaces/acme/panels/counter/tools/increment/", json={"args": {}}),
            types.ResourceUpdatedNotification)
        assert str(updated.params.uri) == "nexus://workspaces/acme/panels/counter/state"
        live.create("later", example("counter"))
        await notifications.next_of(types.ToolListChangedNotification)
        assert "later__increment" in by_name(await session.list_tools())
        assert live.api("DELETE", "/api/v1/workspaces/acme/panels/later/").status_code == 204
        await notifications.next_of(types.ToolListChangedNotification)
        assert "later__increment" not in by_name(await session.list_tools())


FAILING = """<NexusPanel id="failing" title="Failing">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic><Tool name="boom"><Handler>throw new Error('kaput');</Handler></Tool></Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


def test_a_session_is_bound_to_the_user_who_opened_it(live: Live) -> None:
    opened = httpx.post(mcp_url(live), json=INITIALIZE, headers={**ACCEPT, **live.headers("alice")}, timeout=10)
    assert opened.status_code == 200, opened.text
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-06-18"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    borrowed = httpx.post(mcp_url(live), json=listing, headers={**ACCEPT, **session, **live.headers("dave")}, timeout=10)
    assert borrowed.status_code == 404
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    httpx.post(mcp_url(live), json=initialized, headers={**ACCEPT, **session, **live.headers("alice")}, timeout=10)
    own = httpx.post(mcp_url(live), json=listing, headers={**ACCEPT, **session, **live.headers("alice")}, timeout=10)
    assert own.status_code == 200 and "counter__increment" in own.text
    httpx.delete(mcp_url(live), headers={**session, **live.headers("alice")}, timeout=10)


def test_a_body_over_body_limit_is_refused_with_413(live: Live) -> None:
    huge = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": "x" * (2 * 1024 * 1024)}}  # type: ignore[dict-item]
    response = httpx.post(mcp_url(live), json=huge, headers={**ACCEPT, **live.headers("alice")}, timeout=30)
    assert response.status_code == 413


def test_a_session_serves_only_the_workspace_it_was_opened_on(live: Live) -> None:
    provision(live.env, "alice", "other", migrate=False)  # alice may now use both workspaces
    opened = httpx.post(mcp_url(live), json=INITIALIZE, headers={**ACCEPT, **live.headers("alice")}, timeout=10)
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-06-18",
               **ACCEPT, **live.headers("alice")}
    httpx.post(mcp_url(live), json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session, timeout=10)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    assert "counter__increment" in httpx.post(mcp_url(live), json=listing, headers=session, timeout=10).text
    elsewhere = httpx.post(mcp_url(live, "other"), json=listing, headers=session, timeout=10)
    assert "This session belongs to workspace 'acme'" in elsewhere.text
    assert "counter__increment" not in elsewhere.text
    httpx.delete(mcp_url(live), headers=session, timeout=10)
