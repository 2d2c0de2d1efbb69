"""Panel tools as MCP tools: every tool of every running panel, named ``{panelId}__{toolName}``.

A call runs through ``panel_service.run_tool`` exactly like a REST trigger (argument checks,
capabilities, the panel's lock, PATCH to every browser, audit with the caller as actor).
Every outcome is a tool result: its ``structuredContent`` is the protocol's RESULT body and
its text the same JSON; a refusal or a handler error sets ``isError`` and carries the code.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from django.db import InterfaceError, OperationalError
from mcp import types
from mcp.server.session import ServerSession

from nexus.errors import error_body
from workspaces.mcp.auth import Caller
from workspaces.models import Panel, PanelStatus, Workspace
from workspaces.nxml import PanelDefinition
from workspaces.services import panels as panel_service
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ProgressCallback, ServiceError, definition_of, in_worker

SEPARATOR = "__"
MAX_PANEL_ID = 64


def tool_name(panel_id: str, tool: str) -> str:
    return f"{panel_id}{SEPARATOR}{tool}"


def _describe(panel: Panel, definition: PanelDefinition) -> list[types.Tool]:
    return [
        types.Tool(
            name=tool_name(panel.panel_id, tool.name),
            title=f"{panel.title}: {tool.name}",
            description=tool.description or f"Runs '{tool.name}' on the panel '{panel.title}' ({panel.panel_id}).",
            inputSchema=tool.args_schema(),
        )
        for tool in definition.tools
    ]


def running_panels(workspace: Workspace) -> list[Panel]:
    """The workspace's running panels with their parsed definitions cached (call in a worker)."""
    panels = list(
        Panel.objects.select_related("workspace").defer("source")
        .filter(workspace=workspace, status=PanelStatus.RUNNING).order_by("panel_id")
    )
    for panel in panels:
        definition_of(panel)
    return panels


@in_worker
def _list(workspace: Workspace) -> list[types.Tool]:
    return [tool for panel in running_panels(workspace) for tool in _describe(panel, definition_of(panel))]


async def list_tools(caller: Caller) -> list[types.Tool]:
    return await _list(caller.workspace)


@in_worker
def _resolve(workspace: Workspace, name: str) -> tuple[Panel, str]:
    """The panel and tool a name means; panel ids and tool names may themselves contain the separator."""
    splits = [(name[:index], name[index + len(SEPARATOR):]) for index in _separator_positions(name)]
    candidates = {panel.panel_id: panel for panel in panel_service.hot_panels().filter(
        workspace=workspace, panel_id__in=[panel_id for panel_id, _ in splits])}
    for panel_id, tool in splits:
        panel = candidates.get(panel_id)
        if panel is not None and definition_of(panel).tool(tool) is not None:
            return panel, tool
    raise ServiceError(
        ErrorCode.TOOL_NOT_FOUND,
        f"No tool '{name}' in workspace '{workspace.slug}': names are <panelId>{SEPARATOR}<toolName>, see tools/list",
    )


def _separator_positions(name: str) -> list[int]:
    return [index for index in range(1, min(len(name), MAX_PANEL_ID + 1)) if name.startswith(SEPARATOR, index)]


def result_of(body: dict[str, Any], is_error: bool) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(body))],
        structuredContent=body,
        isError=is_error,
    )


def refusal(code: str, message: str, details: Any = None) -> types.CallToolResult:
    return result_of({"status": "error", **error_body(code, message, details)}, is_error=True)


async def call_tool(
    caller: Caller, name: str, arguments: Any, on_progress: ProgressCallback | None = None
) -> types.CallToolResult:
    if caller.execute_refusal is not None:
        return refusal(caller.execute_refusal.code, caller.execute_refusal.message)
    try:
        panel, tool = await _resolve(caller.workspace, name)
        outcome = await panel_service.run_tool(panel, tool, arguments, actor=caller.actor, on_progress=on_progress)
    except ServiceError as exc:
        return refusal(exc.code, exc.message, exc.details)
    except (OperationalError, InterfaceError):
        return refusal(ErrorCode.UNAVAILABLE, "Database unavailable: retry the call later")
    return result_of(outcome.body(), is_error=outcome.status == "error")


def progress_reporter(
    session: ServerSession, progress_token: str | int | None, request_id: str | int
) -> ProgressCallback | None:
    """MCP progress notifications for a call whose client asked for them (it sent a progressToken)."""
    if progress_token is None:
        return None
    steps = itertools.count(1)

    async def report(progress: dict[str, Any]) -> None:
        await session.send_progress_notification(
            progress_token, float(next(steps)), message=progress.get("message"), related_request_id=str(request_id),
        )

    return report
