"""What one MCP session hears from the channel layer while it lasts, sent on as notifications.

A session listens to its workspace's catalog group (panels created, edited, stopped or
deleted: ``notifications/tools/list_changed`` and ``notifications/resources/list_changed``)
and, for each panel it subscribed to, to the panel's own group (committed changes:
``notifications/resources/updated``). Listening works across processes with the Redis layer;
notifications reach the client over its open GET stream and are dropped while none is open.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup
from channels.layers import get_channel_layer
from mcp import types
from mcp.server.session import ServerSession
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl

from workspaces.mcp.resources import STATE, PanelResource
from workspaces.services.catalog import PANELS_CHANGED, catalog_group_name
from workspaces.services.publish import panel_group_name

logger = logging.getLogger("nexus.mcp")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


async def _listen(group: str, handler: Handler) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        while True:
            await handler(await layer.receive(channel))
    finally:
        with anyio.CancelScope(shield=True):
            await layer.group_discard(group, channel)


class SessionWatch:
    """The session's listeners; bound to the workspace of the session's first request."""

    def __init__(self, tasks: TaskGroup) -> None:
        self._tasks = tasks
        self._session: ServerSession | None = None
        self.workspace_slug: str | None = None
        self._kinds: dict[str, set[str]] = {}  # panel id -> subscribed resource kinds
        self._listeners: dict[str, anyio.CancelScope] = {}

    def attach(self, session: ServerSession, workspace_slug: str) -> None:
        if self.workspace_slug is None:
            self.workspace_slug, self._session = workspace_slug, session
            self._start(catalog_group_name(workspace_slug), self._on_catalog)
        elif workspace_slug != self.workspace_slug:
            raise McpError(types.ErrorData(
                code=types.INVALID_REQUEST,
                message=f"This session belongs to workspace '{self.workspace_slug}': "
                        f"open a new session at /mcp/workspaces/{workspace_slug}/",
            ))

    def subscribe(self, resource: PanelResource) -> None:
        kinds = self._kinds.setdefault(resource.panel_id, set())
        kinds.add(resource.kind)
        if resource.panel_id not in self._listeners:
            self._listeners[resource.panel_id] = self._start(
                panel_group_name(resource.workspace_slug, resource.panel_id), self._on_panel(resource.panel_id))

    def unsubscribe(self, resource: PanelResource) -> None:
        kinds = self._kinds.get(resource.panel_id, set())
        kinds.discard(resource.kind)
        if not kinds:
            self._kinds.pop(resource.panel_id, None)
            listener = self._listeners.pop(resource.panel_id, None)
            if listener is not None:
                listener.cancel()

    def _start(self, group: str, handler: Handler) -> anyio.CancelScope:
        scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                await _listen(group, handler)

        self._tasks.start_soon(run)
        return scope

    async def _on_catalog(self, message: dict[str, Any]) -> None:
        if message.get("type") != PANELS_CHANGED:
            return
        await self._notify(types.ToolListChangedNotification())
        await self._notify(types.ResourceListChangedNotification())
        panel_id = str(message.get("panelId", ""))
        for kind in sorted(self._kinds.get(panel_id, ())):
            await self._updated(panel_id, kind)

    def _on_panel(self, panel_id: str) -> Handler:
        async def on_message(message: dict[str, Any]) -> None:
            changed = message.get("type") == "panel.commit" and message.get("mutations")
            if changed and STATE in self._kinds.get(panel_id, ()):
                await self._updated(panel_id, STATE)

        return on_message

    async def _updated(self, panel_id: str, kind: str) -> None:
        assert self.workspace_slug is not None
        uri = PanelResource(self.workspace_slug, panel_id, kind).uri
        await self._notify(types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(
            uri=AnyUrl(uri))))

    async def _notify(self, notification: Any) -> None:
        if self._session is None:
            return
        try:
            await self._session.send_notification(types.ServerNotification(notification))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("MCP session closed before a %s notification", type(notification).__name__)


@asynccontextmanager
async def session_watch(_server: Any) -> AsyncIterator[SessionWatch]:
    """The server's lifespan: entered once per MCP session, so its listeners end with it."""
    async with anyio.create_task_group() as tasks:
        try:
            yield SessionWatch(tasks)
        finally:
            tasks.cancel_scope.cancel()

