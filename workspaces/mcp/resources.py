"""Panels as MCP resources: ``nexus://workspaces/{slug}/panels/{id}/state`` and ``.../source``.

The state resource is the same JSON as ``GET .../panels/{id}/state/`` (``panelId``, ``state``,
``stateVersion``); the source resource is the panel's NXML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.shared.exceptions import McpError

from workspaces.mcp.auth import Caller
from workspaces.models import Panel, Workspace
from workspaces.services.panels import ServiceError, get_panel, in_worker

STATE = "state"
SOURCE = "source"
MIME_TYPES = {STATE: "application/json", SOURCE: "application/xml"}
RESOURCE_NOT_FOUND = -32002  # the code the MCP specification gives an unknown resource
_URI = re.compile(
    r"^nexus://workspaces/(?P<slug>[-a-zA-Z0-9_]+)/panels/(?P<panel_id>[A-Za-z0-9_-]{1,64})/(?P<kind>state|source)$"
)


@dataclass(frozen=True)
class PanelResource:
    workspace_slug: str
    panel_id: str
    kind: str

    @property
    def uri(self) -> str:
        return f"nexus://workspaces/{self.workspace_slug}/panels/{self.panel_id}/{self.kind}"


def parse_uri(uri: Any, workspace: Workspace) -> PanelResource:
    """The panel resource a URI names; it must belong to the endpoint's workspace."""
    match = _URI.match(str(uri))
    if match is None:
        raise McpError(types.ErrorData(
            code=types.INVALID_PARAMS,
            message=f"Unknown resource URI '{uri}': expected nexus://workspaces/<slug>/panels/<id>/state or /source",
        ))
    if match["slug"] != workspace.slug:
        raise McpError(types.ErrorData(
            code=types.INVALID_PARAMS,
            message=f"'{uri}' is in workspace '{match['slug']}'; this endpoint serves '{workspace.slug}'",
        ))
    return PanelResource(workspace.slug, match["panel_id"], match["kind"])


def _describe(panel: Panel) -> list[types.Resource]:
    return [
        types.Resource(
            uri=PanelResource(panel.workspace.slug, panel.panel_id, kind).uri,  # type: ignore[arg-type]
            name=f"{panel.panel_id}/{kind}",
            title=f"{panel.title}: {'state' if kind == STATE else 'NXML source'}",
            mimeType=MIME_TYPES[kind],
        )
        for kind in (STATE, SOURCE)
    ]


@in_worker
def _list(workspace: Workspace) -> list[types.Resource]:
    panels = Panel.objects.select_related("workspace").only("panel_id", "title", "workspace__slug")
    listed = panels.filter(workspace=workspace).order_by("panel_id")
    return [resource for panel in listed for resource in _describe(panel)]


async def list_resources(caller: Caller) -> list[types.Resource]:
    return await _list(caller.workspace)


def templates(workspace: Workspace) -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            uriTemplate=f"nexus://workspaces/{workspace.slug}/panels/{{panelId}}/{kind}",
            name=f"panel {kind}",
            description="A panel's committed state with its stateVersion" if kind == STATE else "A panel's NXML",
            mimeType=MIME_TYPES[kind],
        )
        for kind in (STATE, SOURCE)
    ]


def _content(panel: Panel, kind: str) -> str:
    if kind == SOURCE:
        return panel.source
    return json.dumps({"panelId": panel.panel_id, "state": panel.state, "stateVersion": panel.state_version})


@in_worker
def _read(workspace: Workspace, resource: PanelResource) -> str:
    try:
        panel = get_panel(workspace, resource.panel_id)
    except ServiceError as exc:
        error = types.ErrorData(code=RESOURCE_NOT_FOUND, message=exc.message, data={"uri": resource.uri})
        raise McpError(error) from None
    return _content(panel, resource.kind)


async def read_resource(caller: Caller, uri: Any) -> list[ReadResourceContents]:
    resource = parse_uri(uri, caller.workspace)
    return [ReadResourceContents(await _read(caller.workspace, resource), MIME_TYPES[resource.kind])]
