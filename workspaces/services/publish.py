"""Fan-out through the channel layer: a panel's commits to its group, access changes to its workspace's."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"


def panel_group_name(workspace_slug: str, panel_id: str) -> str:
    """Every socket of one panel, on every process."""
    return f"panel.{workspace_slug}.{panel_id}"


def workspace_group_name(workspace_pk: int) -> str:
    """Every socket of every panel of one workspace (keyed by id: a deleted slug can be reused)."""
    return f"workspace.{workspace_pk}"


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


def access_message(user_pk: int | None) -> dict[str, Any]:
    """Sockets of ``user_pk`` (all of the workspace's when None) re-check their access at once."""
    return {"type": ACCESS_CHANGED, "user": user_pk}


async def asend(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(group, message)


class _OrderedPublisher:
    """Hands messages from worker threads to the server's event loop, sent one after another.

    The worker does not wait for the channel layer: it only enqueues (in commit order, while it
    still holds the panel), and a single task on the loop sends in that same order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.task = loop.create_task(self._run())

    def submit(self, group: str, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, message))

    async def _run(self) -> None:
        while True:
            group, message = await self.queue.get()
            try:
                await asend(group, message)
            except Exception:
                # Committed state is the truth; clients that miss a message re-sync from it.
                logger.exception("could not send %s to %s", message.get("type"), group)


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


def send(group: str, message: dict[str, Any]) -> None:
    """Send from synchronous code (the applier runs in a worker thread)."""
    publisher = _server_publisher()
    if publisher is not None:
        publisher.submit(group, message)
        return
    try:  # no server loop (a command, a test client): send and wait
        async_to_sync(asend)(group, message)
    except Exception:
        logger.exception("could not send %s to %s", message.get("type"), group)


def publish(workspace_slug: str, panel_id: str, message: dict[str, Any]) -> None:
    send(panel_group_name(workspace_slug, panel_id), message)


def announce_access_change(workspace_pk: int, user_pk: int | None = None) -> None:
    """Tell the workspace's sockets that a membership changed; they re-check and close if refused."""
    send(workspace_group_name(workspace_pk), access_message(user_pk))
