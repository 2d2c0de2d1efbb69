"""Fan-out of committed changes through the panel's channel-layer group."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from workspaces.models import panel_group_name

logger = logging.getLogger(__name__)


def commit_message(
    state_version: int, mutations: list[dict[str, Any]], events: list[dict[str, Any]], views: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "panel.commit",
        "stateVersion": state_version,
        "mutations": mutations,
        "events": events,
        "viewCommands": views,
        "timestamp": int(time.time() * 1000),
    }


async def apublish(workspace_slug: str, panel_id: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(panel_group_name(workspace_slug, panel_id), message)


def publish(workspace_slug: str, panel_id: str, message: dict[str, Any]) -> None:
    """Send from synchronous code (the applier runs in a worker thread)."""
    try:
        async_to_sync(apublish)(workspace_slug, panel_id, message)
    except Exception:
        # Committed state is the truth; clients that miss a message re-sync from it.
        logger.exception("could not publish %s for %s/%s", message.get("type"), workspace_slug, panel_id)
