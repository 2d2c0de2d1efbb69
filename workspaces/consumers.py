"""The live panel protocol over WebSockets: thin glue between frames and the panel service."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError

from nexus import lifecycle
from nexus.logging import request_id_var
from workspaces import access
from workspaces.access import AccessDenied, Principal
from workspaces.frame_rate import FrameRate
from workspaces.models import Panel, Workspace
from workspaces.services import json_input, presence, quotas, telemetry
from workspaces.services import panels as panel_service
from workspaces.services.errors import CodedError, ErrorCode
from workspaces.services.panels import ServiceError
from workspaces.services.publish import panel_group_name, workspace_group_name
from workspaces.ws_auth import authenticate

logger = logging.getLogger("nexus.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_HEARTBEAT = 4408
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
CLOSE_RECONNECT = 1012
AGE_JITTER = 0.1
RECONNECT_HINT_MS = (500, 2000)
ACCESS_RECHECK_S = 10.0
# A commit published by another process can arrive after a later one from this process; under load
# that lag passed half a second, so a watcher skipped versions. Only a gap waits this long.
REORDER_WAIT_S = 2.0
CLOSE_CODES = {401: CLOSE_UNAUTHENTICATED, 403: CLOSE_FORBIDDEN, 404: CLOSE_NOT_FOUND}
# Tasks that only watch the socket (no client request in them): cancelled when it closes.
WATCHER_TASKS = ("_heartbeat", "_expire", "_age_out", "_reconnect_after")


class ProtocolError(CodedError):
    """A frame refused with an ERROR message to the client (the request's id, when it had one)."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


def _require(frame: dict[str, Any], name: str, kind: type | tuple[type, ...], request_id: Any = None) -> Any:
    if name not in frame:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"'{name}' is required", request_id)
    value = frame[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"'{name}' has the wrong type", request_id)
    return value


@database_sync_to_async
def _open_panel(principal: Principal, workspace_slug: str, panel_id: str) -> Panel:
    workspace = Workspace.objects.filter(slug=workspace_slug).first()
    if workspace is None:
        raise AccessDenied(404, ErrorCode.NOT_FOUND, f"Workspace '{workspace_slug}' not found")
    access.check(principal, workspace, access.PANEL_READ)
    panel = Panel.objects.select_related("workspace").filter(workspace=workspace, panel_id=panel_id).first()
    if panel is None:
        raise AccessDenied(404, ErrorCode.NOT_FOUND, f"Panel '{panel_id}' not found")
    return panel


def _load_checked(principal: Principal, panel_pk: int, permission: str | None) -> Panel:
    """The panel's current row (hot fields only), after checking access when asked to."""
    panel = panel_service.hot_panels().get(pk=panel_pk)
    if permission is not None:
        access.check(principal, panel.workspace, permission)
    return panel


load_checked = database_sync_to_async(_load_checked, thread_sensitive=False)


class PanelConsumer(AsyncWebsocketConsumer):
    """One client watching one panel."""

    panel: Panel | None = None
    principal: Principal | None = None
    broadcast_events: frozenset[str] = frozenset()

    async def connect(self) -> None:
        # Accept first so that a refusal reaches the browser as a close code it can read.
        await self.accept()
        self.group: str | None = None
        self.version = 0
        self.keys: set[str] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.granted: dict[str, float] = {}
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.flush_timer: asyncio.TimerHandle | None = None
        self.last_seen = time.monotonic()
        self.groups_joined: list[str] = []
        self.revoked = False
        self.leaving = False
        self.loop = asyncio.get_running_loop()
        if lifecycle.is_draining():
            await self._send_away("draining")
            return
        try:
            self.principal = await authenticate(self.scope)
            if self.principal is None:
                await self.close(CLOSE_UNAUTHENTICATED)
                return
            self.panel = await _open_panel(self.principal, self.workspace_slug(), self.panel_id())
        except AccessDenied as denied:
            await self.close(CLOSE_CODES.get(denied.status, CLOSE_FORBIDDEN))
            return
        except (OperationalError, InterfaceError):
            logger.warning("database unavailable: refusing a WebSocket for now")
            await self.close(CLOSE_TRY_AGAIN_LATER)
            return
        self.group = panel_group_name(self.panel.workspace.slug, self.panel.panel_id)
        await self._join(self.group, workspace_group_name(self.panel.workspace.pk))
        await asyncio.to_thread(presence.joined, self.panel.workspace.slug, self.panel.panel_id)
        _connections_gauge(1)
        # Checked again after joining: a deletion or revocation committed meanwhile is not missed.
        if not await self._recheck_access():
            return
        self.version = self.panel.state_version
        await self._learn_definition()
        await self.send_json(
            {
                "type": "CONNECTED",
                "panelId": self.panel.panel_id,
                "state": self.panel.state,
                "stateVersion": self.panel.state_version,
                "status": self.panel.status,
            }
        )
        if not lifecycle.watch_socket(self):
            await self._send_away("draining")
            return
        self._spawn(self._heartbeat())
        max_age = settings.NEXUS.WS_MAX_CONNECTION_AGE
        if max_age:
            self._spawn(self._age_out(max_age * random.uniform(1 - AGE_JITTER, 1 + AGE_JITTER)))
        expires_at = self.principal.claims.get("exp")
        if isinstance(expires_at, int | float):
            self._spawn(self._expire(float(expires_at)))

    async def _join(self, *groups: str) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)

    async def _recheck_access(self) -> bool:
        """Reload the panel with a fresh access check; close the socket (False) when refused."""
        assert self.panel is not None and self.principal is not None
        try:
            self.panel = await load_checked(self.principal, self.panel.pk, access.PANEL_READ)
        except Panel.DoesNotExist:
            await self._close_for(CLOSE_NOT_FOUND)
            return False
        except AccessDenied:
            await self._close_for(CLOSE_FORBIDDEN)
            return False
        self.granted.clear()  # every other permission is checked again on its next use
        return True

    async def _close_for(self, code: int) -> None:
        """Close for good: frames and commits still in flight are not served any more."""
        self.revoked = True
        await self.close(code)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message database clean-up.

        That clean-up is a thread hop for every frame and group message. This consumer never
        touches the database on its own thread: every query runs through
        ``database_sync_to_async``, which closes stale connections around each call itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def workspace_slug(self) -> str:
        kwargs = self.scope["url_route"]["kwargs"]
        if "workspace" in kwargs:
            return str(kwargs["workspace"])
        assert self.principal is not None
        return self.principal.token_workspace or access.DEFAULT_WORKSPACE

    def panel_id(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["panel_id"])

    async def disconnect(self, code: int) -> None:
        lifecycle.forget_socket(self)
        self.leaving = True
        timer = getattr(self, "flush_timer", None)
        if timer is not None:
            timer.cancel()
        for task in list(getattr(self, "tasks", ())):
            if not task.done() and task.get_name() == "watcher":
                task.cancel()
        for group in getattr(self, "groups_joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "group", None) and self.panel is not None:
            await asyncio.to_thread(presence.left, self.panel.workspace.slug, self.panel.panel_id)
            _connections_gauge(-1)

    # ------------------------------------------------------------ frames from the client

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_seen = time.monotonic()
        if self.panel is None:
            return
        if not self.frame_rate.take():
            await self._refuse_frame(text_data)
            return
        try:
            frame = self._decode(text_data)
            await self._dispatch(frame)
        except ProtocolError as error:
            await self.send_error(error.code, error.message, error.request_id)

    @functools.cached_property
    def frame_rate(self) -> FrameRate:
        config = settings.NEXUS
        return FrameRate(config.WS_MAX_MESSAGES_PER_SECOND, config.WS_MESSAGE_BURST)

    async def _refuse_frame(self, text_data: str | None) -> None:
        """Over the socket's frame rate: an ERROR for this frame, or 1008 when the flood goes on."""
        rate = self.frame_rate
        if rate.persistent:
            logger.warning("closing a socket that kept sending over its frame rate (%s)", self.panel_id())
            await self.close(CLOSE_POLICY_VIOLATION)
            return
        try:
            request_id = self._decode(text_data).get("requestId")
        except ProtocolError:
            request_id = None
        await self.send_error(
            ErrorCode.THROTTLED, f"Too many frames: at most {rate.rate:g} per second, {rate.burst} at once; slow down",
            request_id,
        )

    def _decode(self, text_data: str | None) -> dict[str, Any]:
        if text_data is None:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "Frames must be JSON text")
        try:
            frame = json_input.loads(text_data)
        except json_input.JSONTooDeep as exc:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"Frame refused: {exc}") from None
        except ValueError:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "Frame is not valid JSON") from None
        if not isinstance(frame, dict):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "Frame must be a JSON object")
        if not isinstance(frame.get("type"), str):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'type' is required")
        return frame

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "PING":
            await self.send_json({"type": "PONG"})
        elif kind == "PONG":
            return
        elif kind == "TRIGGER":
            await self._on_trigger(frame)
        elif kind == "SET":
            await self._on_set(frame)
        elif kind in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._on_subscription(kind, frame)
        else:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"Unknown message type '{kind[:40]}'")

    async def _on_trigger(self, frame: dict[str, Any]) -> None:
        request_id = _require(frame, "requestId", (str, int))
        tool = _require(frame, "tool", str, request_id)
        args = frame.get("args", {})
        if args is not None and not isinstance(args, dict):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'args' must be an object", request_id)
        scope = frame.get("scope")
        if scope is not None and not isinstance(scope, dict):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'scope' must be an object", request_id)
        self._spawn(self._run_trigger(request_id, tool, args or {}, scope))

    async def _run_trigger(self, request_id: Any, tool: str, args: dict[str, Any], scope: Any) -> None:
        assert self.panel is not None and self.principal is not None
        token = request_id_var.set(str(request_id))
        try:
            panel = await self._authorized_panel(access.PANEL_EXECUTE)

            async def progress(update: dict[str, Any]) -> None:
                await self.send_json({"type": "PROGRESS", "requestId": request_id, **update})

            outcome = await panel_service.run_tool(
                panel, tool, args, scope, actor=self.principal.username, on_progress=progress
            )
            # The run's own events go to this socket alone; broadcast ones come through the group.
            for event in outcome.events:
                if event.get("name") not in self.broadcast_events:
                    await self._send_event(event)
            await self.send_json({"type": "RESULT", "requestId": request_id, **outcome.body()})
        except AccessDenied as denied:
            await self.send_error(denied.code, denied.message, request_id)
        except ServiceError as error:
            await self.send_error(error.code, error.message, request_id, quotas.retry_after_of(error))
        except Panel.DoesNotExist:
            await self.send_error(ErrorCode.NOT_FOUND, "Panel was deleted", request_id)
        except (OperationalError, InterfaceError):
            await self.send_error(ErrorCode.UNAVAILABLE, "Database unavailable", request_id)
        except Exception:
            logger.exception("trigger %s failed", tool)
            await self.send_error(ErrorCode.INTERNAL_ERROR, "Internal error", request_id)
        finally:
            request_id_var.reset(token)

    async def _on_set(self, frame: dict[str, Any]) -> None:
        assert self.panel is not None and self.principal is not None
        request_id = frame.get("requestId")
        key = _require(frame, "key", str, request_id)
        if "value" not in frame:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'value' is required", request_id)
        try:
            panel = await self._authorized_panel(access.PANEL_EXECUTE)
            commit = await panel_service.set_value(panel, key, frame["value"], actor=self.principal.username)
        except AccessDenied as denied:
            raise ProtocolError(denied.code, denied.message, request_id) from None
        except ServiceError as error:
            raise ProtocolError(error.code, error.message, request_id) from None
        if request_id is not None:
            await self.send_json(
                {"type": "RESULT", "requestId": request_id, "status": "success", "mutations": commit.mutations,
                 "events": [], "viewCommands": [], "returnValue": None, "stateVersion": commit.state_version}
            )

    def _on_subscription(self, kind: str, frame: dict[str, Any]) -> None:
        keys = _require(frame, "keys", list)
        if not all(isinstance(key, str) for key in keys):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'keys' must be a list of strings")
        if kind == "SUBSCRIBE":
            self.keys = (self.keys or set()) | set(keys)
        elif self.keys is not None:
            self.keys -= set(keys)

    # ------------------------------------------------------------ messages from the group

    async def panel_commit(self, message: dict[str, Any]) -> None:
        """Forward commits in state-version order; one that overtook another waits briefly."""
        version = message["stateVersion"]
        if message["mutations"] and version <= self.version:
            if message.get("definition"):  # the state is known, the new definition may not be
                await self._send_definition(message["definition"])
            return  # already part of the state this client was given
        if version > self.version + (1 if message["mutations"] else 0):
            self.pending.setdefault(version, []).append(message)
            if self.flush_timer is None:
                self.flush_timer = asyncio.get_running_loop().call_later(
                    REORDER_WAIT_S, lambda: self._spawn(self._flush_pending(force=True))
                )
            return
        await self._deliver(message)
        await self._flush_pending(force=False)

    async def _flush_pending(self, force: bool) -> None:
        """Deliver buffered commits that are now next in line (all of them when forced)."""
        while self.pending:
            lowest = min(self.pending)
            messages = self.pending[lowest]
            has_patch = any(m["mutations"] for m in messages)
            if not force and lowest > self.version + (1 if has_patch else 0):
                break
            del self.pending[lowest]
            for queued in sorted(messages, key=lambda m: not m["mutations"]):
                if not queued["mutations"] or queued["stateVersion"] > self.version:
                    await self._deliver(queued)
        if self.flush_timer is not None and (force or not self.pending):
            self.flush_timer.cancel()
            self.flush_timer = None

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self.revoked:
            return
        if message.get("definition"):  # an update in place: the new view first, then its migration
            await self._send_definition(message["definition"])
        if message["mutations"]:
            self.version = message["stateVersion"]
            mutations = [m for m in message["mutations"] if self.keys is None or m["key"] in self.keys]
            if mutations or self.keys is None:
                await self.send_json(
                    {"type": "PATCH", "mutations": mutations, "stateVersion": message["stateVersion"],
                     "timestamp": message["timestamp"]}
                )
        for event in message["events"]:
            if event.get("name") in self.broadcast_events:
                await self._send_event(event)
        for command in message["viewCommands"]:
            await self.send_json({"type": "VIEW", "command": command})

    async def _send_definition(self, definition: dict[str, Any]) -> None:
        self.granted.clear()  # the next request reloads the panel, and with it the new tools
        await self.send_json({"type": "DEFINITION", **definition})

    async def _send_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "EVENT", "name": event.get("name"), "payload": event.get("payload")})

    async def _learn_definition(self) -> None:
        """What the consumer needs of the panel's definition: the events every viewer gets."""
        assert self.panel is not None
        definition = await panel_service.adefinition_of(self.panel)
        self.broadcast_events = definition.broadcast_events()

    async def panel_changed(self, message: dict[str, Any]) -> None:
        if self.panel is not None and self.principal is not None:
            status = self.panel.status
            self.panel = await load_checked(self.principal, self.panel.pk, None)
            await self._learn_definition()
            if self.panel.status != status:
                await self.send_json({"type": "STATUS", "status": self.panel.status})

    async def panel_deleted(self, message: dict[str, Any]) -> None:
        await self._close_for(CLOSE_NOT_FOUND)

    async def access_changed(self, message: dict[str, Any]) -> None:
        """A membership of this workspace changed: check this socket's access again at once."""
        user = message.get("user")
        if self.panel is None or self.principal is None or self.revoked:
            return
        if user is None or user == getattr(self.principal.user, "pk", None):
            await self._recheck_access()

    async def server_shutdown(self, message: dict[str, Any]) -> None:
        await self.close(CLOSE_GOING_AWAY)

    # ------------------------------------------------------------ draining and socket age

    def ask_to_reconnect(self, delay_s: float) -> None:
        """The process is draining: close with a reconnect hint after delay_s (any thread)."""
        if self.loop.is_closed():  # its server loop is gone (a test's), and the socket with it
            lifecycle.forget_socket(self)
            return
        self.loop.call_soon_threadsafe(lambda: self._spawn(self._reconnect_after(delay_s)))

    async def _reconnect_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._when_idle()
        await self._send_away("draining")

    async def _age_out(self, age_s: float) -> None:
        """Old sockets reconnect, so that a scaled-out fleet shares the load again."""
        await asyncio.sleep(age_s)
        await self._when_idle()
        await self._send_away("max-age")

    async def _when_idle(self) -> None:
        """Let the requests of this socket answer first; the server's grace bounds a drain."""
        while running := [task for task in self.tasks if task.get_name() == "work" and not task.done()]:
            await asyncio.wait(running)

    async def _send_away(self, reason: str) -> None:
        """A RECONNECT frame with a suggested delay, then close 1012; the client comes back later."""
        if self.leaving:
            return
        self.leaving = True
        delay_ms = random.randint(*RECONNECT_HINT_MS)
        await self.send_json({"type": "RECONNECT", "reason": reason, "retryAfterMs": delay_ms})
        await self.close(CLOSE_RECONNECT)

    # ------------------------------------------------------------ helpers

    async def _authorized_panel(self, permission: str) -> Panel:
        """Access is re-checked at most every ACCESS_RECHECK_S per permission on a live socket.

        Between checks the panel loaded then is used as is: the service reads the state itself,
        and any change of the panel's definition or status reaches this consumer as
        ``panel.changed``, which reloads it.
        """
        assert self.panel is not None and self.principal is not None
        if self.revoked:
            raise AccessDenied(403, ErrorCode.FORBIDDEN, "Access to this panel ended; the socket is closing")
        now = time.monotonic()
        if self.granted.get(permission, 0.0) <= now:
            self.panel = await load_checked(self.principal, self.panel.pk, permission)
            self.granted[permission] = now + ACCESS_RECHECK_S
        return self.panel

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def send_error(self, code: str, message: str, request_id: Any = None,
                         retry_after: int | None = None) -> None:
        telemetry.count_error(code)
        frame: dict[str, Any] = {"type": "ERROR", "code": code, "message": message}
        if request_id is not None:
            frame["requestId"] = request_id
        if retry_after is not None:
            frame["retryAfter"] = retry_after
        await self.send_json(frame)

    def _spawn(self, coroutine: Any) -> None:
        name = "watcher" if coroutine.__name__ in WATCHER_TASKS else "work"
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _heartbeat(self) -> None:
        interval = settings.NEXUS.HEARTBEAT_SECONDS
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_seen > 2 * interval:
                await self.close(CLOSE_HEARTBEAT)
                return
            await self.send_json({"type": "PING"})

    async def _expire(self, expires_at: float) -> None:
        """A socket opened with a JWT closes when the token expires (4401: reconnect with a fresh one)."""
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self._close_for(CLOSE_UNAUTHENTICATED)


def _connections_gauge(delta: int) -> None:
    telemetry.count_connections(delta)

