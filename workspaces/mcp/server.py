"""The MCP server of a workspace: its tools, resources and instructions, on the official SDK.

One ``Server`` serves every workspace; each request carries its ``Caller`` (set by the
endpoint in ``workspaces.mcp.app`` after authentication), and each session its
``SessionWatch`` (the server's lifespan, entered once per session).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from mcp import types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import McpError

from workspaces.mcp import resources, tools
from workspaces.mcp.auth import Caller
from workspaces.mcp.subscriptions import SessionWatch, session_watch
from workspaces.models import Workspace
from workspaces.services.panels import definition_of

CALLER = "nexus.mcp.caller"  # the scope key the endpoint stores the request's Caller under
SERVER_NAME = "nexus"

# The instructions of a session being opened: the endpoint sets them before the SDK starts
# the session, whose task inherits this context.
opening_instructions: ContextVar[str | None] = ContextVar("opening_instructions", default=None)


def instructions_for(workspace: Workspace) -> str:
    """A short description of the workspace's running panels for the agent (call in a worker)."""
    lines = [
        f"Nexus workspace '{workspace.name}' ({workspace.slug}). Each tool runs a panel tool, named "
        "<panelId>__<toolName>, in the panel's sandbox; its result is the run's RESULT (status, mutations, "
        f"returnValue, stateVersion). Read nexus://workspaces/{workspace.slug}/panels/<panelId>/state for a "
        "panel's state and .../source for its NXML; subscribe to hear of changes."
    ]
    panels = tools.running_panels(workspace)
    lines.append(f"Running panels ({len(panels)}):" if panels else "No panel is running.")
    for panel in panels:
        names = ", ".join(tool.name for tool in definition_of(panel).tools) or "no tools"
        lines.append(f"- {panel.panel_id}: {panel.title} (tools: {names})")
    return "\n".join(lines)


class NexusServer(Server[SessionWatch, Any]):
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = super().create_initialization_options(
            NotificationOptions(tools_changed=True, resources_changed=True), experimental_capabilities)
        if options.capabilities.resources is not None:
            options.capabilities.resources.subscribe = True
        options.instructions = opening_instructions.get()
        return options

    def caller(self) -> Caller:
        """The current request's caller; binds the session to its workspace on first use."""
        context = self.request_context
        if context.request is None or CALLER not in context.request.scope:
            message = "This server is only served over /mcp/workspaces/<slug>/"
            raise McpError(types.ErrorData(code=types.INVALID_REQUEST, message=message))
        caller: Caller = context.request.scope[CALLER]
        context.lifespan_context.attach(context.session, caller.workspace.slug)
        return caller


def build_server() -> NexusServer:
    server = NexusServer(SERVER_NAME, lifespan=session_watch)

    async def list_tools(_: Any) -> types.ServerResult:
        return types.ServerResult(types.ListToolsResult(tools=await tools.list_tools(server.caller())))

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        caller = server.caller()
        context = server.request_context
        token = context.meta.progressToken if context.meta else None
        progress = tools.progress_reporter(context.session, token, context.request_id)
        result = await tools.call_tool(caller, request.params.name, request.params.arguments, progress)
        return types.ServerResult(result)

    # Registered directly rather than through the decorators: those keep one tool cache for
    # the whole server (tools differ per workspace) and check arguments against the schema,
    # where the panel service's own check gives the API's INVALID_ARGS.
    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool

    @server.list_resources()
    async def list_resources() -> list[types.Resource]:
        return await resources.list_resources(server.caller())

    @server.list_resource_templates()
    async def list_resource_templates() -> list[types.ResourceTemplate]:
        return resources.templates(server.caller().workspace)

    @server.read_resource()
    async def read_resource(uri: Any) -> list[ReadResourceContents]:
        return await resources.read_resource(server.caller(), uri)

    @server.subscribe_resource()
    async def subscribe(uri: Any) -> None:
        caller = server.caller()
        await resources.read_resource(caller, uri)  # refuses an unknown panel now rather than never notifying
        server.request_context.lifespan_context.subscribe(resources.parse_uri(uri, caller.workspace))

    @server.unsubscribe_resource()
    async def unsubscribe(uri: Any) -> None:
        caller = server.caller()
        server.request_context.lifespan_context.unsubscribe(resources.parse_uri(uri, caller.workspace))

    return server
