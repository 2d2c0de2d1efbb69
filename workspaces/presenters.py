"""The JSON shapes of panels, shared by the REST API and the browser pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from workspaces.models import Panel
from workspaces.services import presence
from workspaces.services.panels import definition_of


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def websocket_origin(request: HttpRequest) -> str:
    """ws(s)://host of the request, for the socket URLs handed to clients."""
    return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}"


def websocket_url(request: HttpRequest, panel: Panel) -> str:
    return f"{websocket_origin(request)}/ws/workspaces/{panel.workspace.slug}/panels/{panel.panel_id}/"


def panel_summary(panel: Panel) -> dict[str, Any]:
    return {
        "id": panel.panel_id,
        "title": panel.title,
        "status": panel.status,
        "version": panel.version,
        "stateVersion": panel.state_version,
        "createdAt": iso(panel.created_at),
        "lastActivity": iso(panel.last_activity),
    }


def panel_detail(panel: Panel) -> dict[str, Any]:
    definition = definition_of(panel)
    return {
        **panel_summary(panel),
        "workspace": panel.workspace.slug,
        "state": panel.state,
        "tools": [
            {"name": tool.name, "description": tool.description, "argsSchema": tool.args_schema()}
            for tool in definition.tools
        ],
        "view": definition.view_tree(),
        "error": panel.last_error,
        "clientCount": presence.client_count(panel.workspace.slug, panel.panel_id),
    }
