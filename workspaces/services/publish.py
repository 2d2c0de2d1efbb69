"""Fan-out of committed changes through the panel's channel-layer group."""

from __future__ import annotations

import asyncio
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


class _OrderedPublisher:
    """Hands messages from worker threads to the server's event loop, sent one after another.

    The worker does not wait for the channel layer: it only enqueues (in commit order, while it
    still holds the panel), and a single task on the loop sends in that same order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue()
        self.task = loop.create_task(self._run())

    def submit(self, workspace_slug: str, panel_id: str, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (workspace_slug, panel_id, message))

    async def _run(self) -> None:
        while True:
            workspace_slug, panel_id, message = await self.queue.get()
            try:
                await apublish(workspace_slug, panel_id, message)
            except Exception:
                # Committed state is the truth; clients that miss a message re-sync from it.
                logger.exception("could not publish %s for %s/%s", message.get("type"), workspace_slug, panel_id)


_publisher: _OrderedPublisher | None = None


def start_server_publisher(loop: asyncio.AbstractEventLoop) -> None:
    """Called once by the server with its event loop, before it starts serving."""
    global _publisher
    _publisher = _OrderedPublisher(loop)


def _server_publisher() -> _OrderedPublisher | None:
    publisher = _publisher
    if publisher is None or publisher.loop.is_closed():
        return None
    return publisher


def publish(workspace_slug: str, panel_id: str, message: dict[str, Any]) -> None:
    """Send from synchronous code (the applier runs in a worker thread)."""
    publisher = _server_publisher()
    if publisher is not None:
        publisher.submit(workspace_slug, panel_id, message)
        return
    try:  # no server loop (a command, a test client): send and wait
        async_to_sync(apublish)(workspace_slug, panel_id, message)
    except Exception:
        logger.exception("could not publish %s for %s/%s", message.get("type"), workspace_slug, panel_id)
