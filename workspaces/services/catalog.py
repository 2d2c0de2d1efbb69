"""Announcements that the set of a workspace's panels changed: one was created, edited, stopped or deleted.

They go to the workspace's catalog group, which clients that list panels (MCP sessions)
listen to; the panel's own sockets hear of the change through the panel's group as before.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

PANELS_CHANGED = "panels.changed"


def catalog_group_name(workspace_slug: str) -> str:
    return f"catalog.{workspace_slug}"


async def aannounce(workspace_slug: str, panel_id: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(catalog_group_name(workspace_slug), {"type": PANELS_CHANGED, "panelId": panel_id})


def announce(workspace_slug: str, panel_id: str) -> None:
    """From synchronous code (a worker thread): best effort, a lost announcement only delays a re-list."""
    try:
        async_to_sync(aannounce)(workspace_slug, panel_id)
    except Exception:
        logger.exception("could not announce a change of %s/%s", workspace_slug, panel_id)
