"""The suspension loop of a serving process: keep its leases, take over handlers whose owner is gone.

One loop runs in every ``nexus_serve`` process (``start_suspension_loop``). Each pass renews
the leases of the waiting handlers this process owns, then claims rows whose lease ran out
(``workspaces.services.suspensions.take_over``: one process per row) and finishes each
handler here: the call is made again when that is safe, otherwise the handler's ``await``
throws INTERRUPTED; past its deadline it throws TIMEOUT. When the process drains, the loop
(or the loop is stopped) stops the calls of its own handlers and lets their leases run out at
once, so that another process takes them over instead of this one waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from nexus import lifecycle
from runtime.errors import CodedError
from runtime.extensions import timer
from workspaces.models import PanelSuspension, RunKind
from workspaces.services import suspensions
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import HandlerRun, in_worker
from workspaces.services.panels.definitions import adefinition_of
from workspaces.services.panels.execution import execute
from workspaces.services.sandbox import get_runtime

logger = logging.getLogger("nexus.suspensions")

PASS_INTERVAL_S = 1.0  # how soon a lease that ran out (or a hand-over) is noticed
RETRY_AFTER_ERROR_S = 2.0

Importer = Callable[[bytes], str]


def import_blob(blob: bytes) -> str:
    """The stored guest state made resumable in this process's runtime; its new suspension id."""
    return get_runtime().import_suspension(blob, suspensions.signing_key())


class SuspensionLoop:
    def __init__(self, interval_s: float = PASS_INTERVAL_S, importer: Importer = import_blob) -> None:
        self.interval_s = interval_s
        self.importer = importer
        self.running: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._renewed_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Pass after pass until stopped; a drain hands this process's handlers over."""
        logger.info("suspension loop started")
        while not self._stopping.is_set() and not lifecycle.is_draining():
            try:
                await self.step()
                delay = self.interval_s
            except DatabaseError as exc:
                logger.warning("suspension loop: database unavailable (%s)", exc)
                delay = RETRY_AFTER_ERROR_S
            except Exception:  # the loop outlives any one bad pass
                logger.exception("suspension loop pass failed")
                delay = RETRY_AFTER_ERROR_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        await self.hand_over()  # stopping or draining: other processes finish this one's handlers
        logger.info("suspension loop stopped")

    async def hand_over(self) -> None:
        suspensions.start_handing_over()
        try:
            await in_worker(suspensions.hand_over)()
        except DatabaseError as exc:
            logger.warning("could not hand waiting handlers over (%s); their leases run out by themselves", exc)

    async def step(self) -> list[asyncio.Task[Any]]:
        """One pass: renew leases, take over expired rows; returns the tasks that finish them."""
        if time.monotonic() - self._renewed_at >= suspensions.lease_seconds() / 3:
            await in_worker(suspensions.renew_leases)()
            await in_worker(suspensions.update_gauges)()
            self._renewed_at = time.monotonic()
        started = []
        for row_pk in await in_worker(suspensions.expired_rows)():
            taken = await in_worker(suspensions.take_over)(row_pk)
            if taken is not None:
                started.append(self._start(taken))
        return started

    def _start(self, taken: suspensions.Takeover) -> asyncio.Task[Any]:
        task = asyncio.create_task(self.finish(taken))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def finish(self, taken: suspensions.Takeover) -> None:
        row = taken.row
        logger.info("taking over %s of %s (row %d)", row.handler, row.panel, row.pk)
        prepared = await self._prepare(taken)
        if prepared is None:
            await in_worker(suspensions.forget)(row.pk)
            return
        run, first = prepared
        await execute(run, first=first)

    async def _prepare(self, taken: suspensions.Takeover) -> tuple[HandlerRun, dict[str, Any]] | None:
        """The run rebuilt from the panel's current definition, and how to resume it; None to drop the row."""
        row = taken.row
        run = await _rebuilt_run(row)
        if run is None:
            logger.warning("dropping a waiting %s of %s: the handler no longer exists", row.handler, row.panel)
            return None
        try:
            suspension_id = await in_worker(self.importer)(bytes(row.blob))
        except CodedError as exc:
            logger.warning("dropping a waiting %s of %s: %s", row.handler, row.panel, exc.message)
            return None
        run.waiting = suspensions.Waiting(row.pk, row.generation)
        return run, await _first_resume(run, row, suspension_id, taken.cancelled)


async def _first_resume(run: HandlerRun, row: PanelSuspension, suspension_id: str, cancelled: bool) -> dict[str, Any]:
    failed: dict[str, Any] = {"suspension_id": suspension_id, "ok": False}
    call = f"{row.extension}.{row.method}"
    if cancelled:
        return failed | {"error": f"The wait on {call} was cancelled by an administrator",
                         "error_code": ErrorCode.INTERRUPTED}
    name = suspensions.extension_name(run, row.extension)
    pending = {"suspension_id": suspension_id, "extension": row.extension, "method": row.method,
               "args": list(row.call_args or [])}
    if name == timer.NAME:  # a timer that is late still wakes its handler, at once
        return await suspensions.perform(run, pending)
    if suspensions.deadline_passed(row.deadline):
        return failed | {"error": f"{call} did not answer before its deadline", "error_code": ErrorCode.TIMEOUT}
    if suspensions.safe_to_repeat(name, row.method, list(row.call_args or [])):
        return await suspensions.perform(run, pending)
    return failed | {
        "error": f"The server performing {call} stopped; the call may or may not have been made",
        "error_code": ErrorCode.INTERRUPTED,
    }


async def _rebuilt_run(row: PanelSuspension) -> HandlerRun | None:
    panel = row.panel
    definition = await adefinition_of(panel)
    if row.kind == RunKind.LIFECYCLE:
        handler = definition.lifecycle.get(row.handler)
        if handler is None:
            return None
        code, capabilities = handler.code, definition.lifecycle_capabilities(row.handler)
    else:
        tool = definition.tool(row.handler)
        if tool is None:
            return None
        code, capabilities = tool.handler.code, definition.tool_capabilities(row.handler)
    return HandlerRun(
        panel_pk=panel.pk, workspace_slug=panel.workspace.slug, panel_id=panel.panel_id, definition=definition,
        handler_name=row.handler, code=code, capabilities=capabilities, args=dict(row.args or {}),
        scope=row.scope, actor=row.actor, kind=row.kind,
    )


_loop_task: asyncio.Task[None] | None = None


def start_suspension_loop(loop: asyncio.AbstractEventLoop) -> SuspensionLoop:
    """Called by the server with its event loop: the loop runs until the server drains."""
    global _loop_task
    suspension_loop = SuspensionLoop()
    _loop_task = loop.create_task(suspension_loop.run())
    return suspension_loop
