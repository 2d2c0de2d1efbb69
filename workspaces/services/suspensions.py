"""Durable suspensions: a handler waiting on an extension call, kept as a row that any process can finish.

A segment that ends suspended stores, in its own transaction, the runtime's exported guest
state and the pending call (``record``). The process that ran it owns the row: it renews the
row's lease while it performs the call, and the resumed segment claims the row in its
transaction (``claim``) and deletes it, or stores the new state when the handler waits again
(``settle``). When the owner dies, or hands over on SIGTERM, the lease runs out and another
process takes the row over (``take_over``, driven by ``workspaces.services.suspension_loop``).
A resume that finds its row gone or taken does nothing: each handler finishes once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from nexus.logging import request_id_var
from runtime import ExecutionResult, metrics
from runtime.extensions import timer
from runtime.extensions.registry import ExtensionError
from workspaces.models import PanelSuspension
from workspaces.services import extensions as extension_service
from workspaces.services.errors import ErrorCode
from workspaces.services.process_identity import process_identity
from workspaces.services.sandbox import get_runtime

if TYPE_CHECKING:
    from workspaces.services.panels.records import HandlerRun

logger = logging.getLogger("nexus.suspensions")

HTTP_EXTENSION = "nexus.http"
SAFE_HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The runtime keeps a waiting execution a little longer than its row's deadline, so that the
# deadline, not the runtime's own expiry, decides how a late call ends.
RUNTIME_MARGIN_S = 30.0
TAKEOVER_BATCH = 50
TIMER_SLACK_S = 60.0  # a timer's handler may resume this late (a busy process, a takeover) before TIMEOUT
CANCELLED = "cancelled"  # the owner of a row an administrator cancelled


# Set when the process hands its waiting handlers over (SIGTERM): their calls stop at once.
_handing_over = threading.Event()


class Lost(Exception):
    """The row of a waiting handler is gone or belongs to another process: this one does nothing more."""


@dataclass
class Waiting:
    """Which row a run's waiting handler is, and the claim this process holds on it."""

    row_pk: int
    generation: int
    refusal: str = ""  # set instead of a row when the workspace has too many waiting handlers


def lease_seconds() -> int:
    return int(settings.NEXUS.SUSPENSION_LEASE_SECONDS)


def signing_key() -> bytes:
    """The key exported suspensions are signed with, derived from SECRET_KEY."""
    return hashlib.sha256(b"nexus.suspensions:" + settings.SECRET_KEY.encode()).digest()


def call_timeout_s(extension_name: str, method: str = "", call_args: list[Any] | None = None) -> float:
    """How long one pending call may take before its handler resumes with TIMEOUT."""
    if extension_name == HTTP_EXTENSION:
        return settings.NEXUS.HTTP_TIMEOUT / 1000
    if extension_name == timer.NAME:
        try:
            due = timer.wake_time(method, list(call_args or []), timer.now())
        except ExtensionError:
            return float(get_runtime().config.suspension_ttl_s)
        return max((due - timer.now()).total_seconds(), 0.0) + TIMER_SLACK_S
    return float(get_runtime().config.suspension_ttl_s)


def extension_name(run: HandlerRun, alias: str) -> str:
    declared = next((ext for ext in run.definition.extensions if ext.alias == alias), None)
    return "" if declared is None else declared.name


# Where each nexus.http method takes its options.
_OPTIONS_AT = {"get": 1, "delete": 1, "post": 2, "put": 2, "patch": 2, "request": 0}


def safe_to_repeat(name: str, method: str, call_args: list[Any]) -> bool:
    """Whether performing the call again cannot do harm: a safe HTTP method, or an idempotency key."""
    if name == timer.NAME:
        return True  # waiting again does no harm; the row holds the moment it is due
    if name != HTTP_EXTENSION:
        return False
    position = _OPTIONS_AT.get(method)
    options = call_args[position] if position is not None and len(call_args) > position else None
    options = options if isinstance(options, dict) else {}
    if options.get("idempotencyKey"):
        return True
    if method == "get":
        return True
    return method == "request" and str(options.get("method") or "GET").upper() in SAFE_HTTP_METHODS


# ---------------------------------------------------------------- inside a segment's transaction


def claim(run: HandlerRun) -> None:
    """Hold the run's row for this resume (locked until the transaction ends); Lost when it is not ours."""
    waiting = run.waiting
    if waiting is None or waiting.row_pk == 0:
        return
    # The row stays locked until the segment commits: a takeover waits, then finds the lease renewed
    # (the handler waits again) or the row gone (it finished).
    owned = list(
        PanelSuspension.objects.select_for_update()
        .filter(pk=waiting.row_pk, owner=process_identity(), generation=waiting.generation)
        .values_list("pk", flat=True)
    )
    if not owned:
        raise Lost(f"the waiting handler {run.handler_name} on {run.panel_id} was taken over by another process")


def settle(run: HandlerRun, result: ExecutionResult, committed: bool) -> None:
    """After a segment: a handler that waits (again) is stored, a finished one's row deleted."""
    if result.status == "suspended" and committed and result.suspension:
        record(run, dict(result.suspension))
        return
    waiting = run.waiting
    if waiting is not None and waiting.row_pk:
        PanelSuspension.objects.filter(pk=waiting.row_pk).delete()
    run.waiting = None


def record(run: HandlerRun, suspension: dict[str, Any]) -> None:
    """Store the waiting handler (a new row, or its row updated); over the workspace cap, mark it refused."""
    runtime = get_runtime()
    suspension_id = str(suspension.get("suspension_id"))
    alias, method = str(suspension.get("extension", "")), str(suspension.get("method", ""))
    call_args = list(suspension.get("args") or [])
    waiting = run.waiting
    if (waiting is None or not waiting.row_pk) and _over_workspace_cap(run.workspace_slug):
        cap = settings.NEXUS.WORKSPACE_MAX_SUSPENDED
        run.waiting = Waiting(0, 0, f"more than {cap} handlers of this workspace are waiting on extension calls")
        return
    name = extension_name(run, alias)
    timeout = call_timeout_s(name, method, call_args)
    if name == timer.NAME:  # a process taking it over waits only for what is left
        method, call_args = timer.as_moment(method, call_args, timer.now())
    runtime.set_suspension_deadline(suspension_id, timeout + lease_seconds() + RUNTIME_MARGIN_S)
    blob = runtime.export_suspension(suspension_id, signing_key(), keep=True)
    now = timezone.now()
    # A process that is handing over keeps no new lease: another process takes the handler at once.
    lease = timedelta(seconds=-1 if _handing_over.is_set() else lease_seconds())
    fields: dict[str, Any] = {
        "extension": alias, "method": method, "call_args": call_args, "blob": blob,
        "lease_until": now + lease, "deadline": now + timedelta(seconds=timeout),
    }
    if waiting is not None and waiting.row_pk:
        PanelSuspension.objects.filter(pk=waiting.row_pk, generation=waiting.generation).update(**fields)
        return
    row = PanelSuspension.objects.create(
        panel_id=run.panel_pk, handler=run.handler_name, kind=run.kind, actor=run.actor[:150], args=run.args,
        scope=run.scope, request_id=(request_id_var.get() or "")[:64], owner=process_identity(), **fields,
    )
    run.waiting = Waiting(row.pk, row.generation)


def _over_workspace_cap(workspace_slug: str) -> bool:
    cap = settings.NEXUS.WORKSPACE_MAX_SUSPENDED
    return PanelSuspension.objects.filter(panel__workspace__slug=workspace_slug)[: cap + 1].count() >= cap


def refused_resume(run: HandlerRun, suspension_id: str) -> dict[str, Any] | None:
    """How to resume a handler that could not be stored (workspace cap), or None when it was."""
    waiting = run.waiting
    if waiting is None or not waiting.refusal:
        return None
    run.waiting = None
    return {"suspension_id": suspension_id, "ok": False, "error": waiting.refusal,
            "error_code": ErrorCode.RESOURCE_LIMIT}


# ---------------------------------------------------------------- performing the call


_handover_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()
_handover_lock = threading.Lock()


def _handover_event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    with _handover_lock:
        event = _handover_events.get(loop)
        if event is None:
            event = _handover_events[loop] = asyncio.Event()
            if _handing_over.is_set():
                event.set()
        return event


def start_handing_over() -> None:
    """Stop every call a stored handler of this process waits on (their rows go to other processes)."""
    _handing_over.set()
    with _handover_lock:
        for loop, event in list(_handover_events.items()):
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    loop.call_soon_threadsafe(event.set)


def reset_handover() -> None:
    """Forget a previous hand-over (tests that reuse one process)."""
    _handing_over.clear()
    with _handover_lock:
        _handover_events.clear()


async def perform(run: HandlerRun, suspension: dict[str, Any]) -> dict[str, Any]:
    """The pending extension call carried out (or refused): how to resume the handler.

    Lost when the process hands its handlers over while the call is in flight.
    """
    refused = refused_resume(run, str(suspension.get("suspension_id")))
    if refused is not None:
        return refused
    if run.waiting is None:
        return await extension_service.perform(run, suspension)
    handover = _handover_event()
    if handover.is_set():
        raise Lost("this process is handing its waiting handlers over")
    call = asyncio.ensure_future(extension_service.perform(run, suspension))
    stop = asyncio.ensure_future(handover.wait())
    try:
        await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not call.done():
            call.cancel()  # handed over, or this run itself was cancelled
    if call.cancelled():
        raise Lost("this process handed its waiting handlers over")
    return call.result()


def release_soon(run: HandlerRun) -> None:
    """A run that stopped unexpectedly (cancelled, busy, database gone) lets its row's lease run out,
    so that a takeover finishes the handler; its local suspension is then of no use."""
    waiting = run.waiting
    if waiting is None or not waiting.row_pk:
        return
    run.waiting = None
    thread = threading.Thread(target=_release, args=(waiting.row_pk,), name="nexus-suspension-release", daemon=True)
    thread.start()


def _release(row_pk: int) -> None:
    from django.db import connection

    try:
        expired = timezone.now() - timedelta(seconds=1)
        PanelSuspension.objects.filter(pk=row_pk, owner=process_identity()).update(lease_until=expired)
    except Exception:
        logger.exception("could not release a waiting handler's row")
    finally:
        connection.close()


# ---------------------------------------------------------------- leases and takeovers


def renew_leases() -> int:
    """Push this process's leases forward; returns how many rows it owns."""
    until = timezone.now() + timedelta(seconds=lease_seconds())
    return PanelSuspension.objects.filter(owner=process_identity()).update(lease_until=until)


def hand_over() -> int:
    """Let the lease of every row this process owns run out now, for another process to take over."""
    expired = timezone.now() - timedelta(seconds=1)
    count = PanelSuspension.objects.filter(owner=process_identity()).update(lease_until=expired)
    if count:
        logger.info("handed %d waiting handler(s) over to other processes", count)
    return count


def expired_rows(limit: int = TAKEOVER_BATCH) -> list[int]:
    return list(
        PanelSuspension.objects.filter(lease_until__lt=timezone.now()).order_by("lease_until")
        .values_list("pk", flat=True)[:limit]
    )


@dataclass
class Takeover:
    """A row this process took over, and whether an administrator cancelled its handler."""

    row: PanelSuspension
    cancelled: bool


def take_over(row_pk: int) -> Takeover | None:
    """Claim an expired row for this process (a conditional UPDATE); None when another got it first."""
    now = timezone.now()
    seen = PanelSuspension.objects.filter(pk=row_pk, lease_until__lt=now).values_list("owner", "generation").first()
    if seen is None:
        return None
    owner, generation = seen
    taken = PanelSuspension.objects.filter(pk=row_pk, generation=generation, lease_until__lt=now).update(
        owner=process_identity(), generation=generation + 1, lease_until=now + timedelta(seconds=lease_seconds()),
    )
    row = PanelSuspension.objects.select_related("panel__workspace").filter(pk=row_pk).first() if taken else None
    if row is None:
        return None
    metrics.SUSPENSION_TAKEOVERS_TOTAL.inc()
    return Takeover(row, cancelled=owner == CANCELLED)


def forget(row_pk: int) -> None:
    PanelSuspension.objects.filter(pk=row_pk).delete()


def deadline_passed(deadline: datetime) -> bool:
    return deadline <= timezone.now()


# ---------------------------------------------------------------- figures and the admin


def counts() -> dict[str, int]:
    """Waiting handlers in the database: owned by this process, by live others, and with expired leases."""
    now = timezone.now()
    live = Q(lease_until__gte=now)
    figures = PanelSuspension.objects.aggregate(
        local=Count("pk", filter=live & Q(owner=process_identity())),
        remote=Count("pk", filter=live & ~Q(owner=process_identity())),
        expired=Count("pk", filter=~live),
    )
    return {state: int(figures[state] or 0) for state in ("local", "remote", "expired")}


def update_gauges() -> dict[str, int]:
    figures = counts()
    for state, value in figures.items():
        metrics.SUSPENSIONS.labels(state).set(value)
    return figures


def waiting_on(panel_pk: int) -> int:
    return PanelSuspension.objects.filter(panel_id=panel_pk).count()


def request_cancel(row_pks: list[int]) -> int:
    """Cancel waiting handlers: their owner lets go of them, and whichever process takes them over
    resumes them with an INTERRUPTED error. Returns how many rows were marked."""
    past = timezone.now() - timedelta(seconds=1)
    return PanelSuspension.objects.filter(pk__in=row_pks).update(owner=CANCELLED, lease_until=past)
