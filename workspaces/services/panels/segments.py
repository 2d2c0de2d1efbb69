"""Segments: one runtime call (a handler's start or a resume) and the transaction around it.

A segment runs from a handler's start, or a resume, to its next suspension or its end; its batch
is applied in the same transaction, so a failed segment writes nothing.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction

from runtime import ExecutionContext, ExecutionResult
from runtime.errors import RuntimeBusyError
from runtime.execution import capability_set
from workspaces.models import AuditOutcome, AuditRecord
from workspaces.services import extensions as extension_service
from workspaces.services import suspensions
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.batches import Conflict, apply_batch, read_state
from workspaces.services.panels.computed import sandbox_key
from workspaces.services.panels.errors import BatchRefused, ServiceError
from workspaces.services.panels.records import Commit, HandlerRun, PanelRef
from workspaces.services.panels.workers import in_worker
from workspaces.services.sandbox import get_runtime

logger = logging.getLogger("nexus.panels")

OPTIMISTIC_ATTEMPTS = 8
# Held only while some thread uses a panel's lock, so the map never outgrows the panels in use.
_local_locks: weakref.WeakValueDictionary[int, threading.Lock] = weakref.WeakValueDictionary()
_local_locks_guard = threading.Lock()

Step = Callable[[dict[str, Any]], ExecutionResult]
SegmentOutcome = tuple[ExecutionResult, Commit | None, dict[str, Any] | None]


def local_lock(panel_pk: int) -> threading.Lock:
    """The lock that keeps this process's segments on one panel from interleaving."""
    with _local_locks_guard:
        return _local_locks.setdefault(panel_pk, threading.Lock())


def _exclusive_segment(run: HandlerRun, step: Step, repeatable: bool) -> SegmentOutcome:
    """Execute one segment exclusively and apply its batch; returns (result, commit, failure).

    PostgreSQL locks only the panel's row, so the segment runs under that lock. SQLite has one
    writer for the whole database: holding it while a slow handler runs would stall every other
    panel, so a segment that can be run again (one that starts a handler) runs unlocked on the
    state it read and commits only if no other process changed the panel meanwhile, else runs
    again; its last attempt, and every resumed segment, hold the lock throughout.
    """
    try:
        with local_lock(run.panel_pk):
            if repeatable and connection.vendor == "sqlite":
                for _ in range(OPTIMISTIC_ATTEMPTS - 1):
                    outcome = _optimistic_segment(run, step)
                    if outcome is not None:
                        return outcome
            return _locked_segment(run, step)
    except RuntimeBusyError as exc:
        raise ServiceError(ErrorCode.RUNTIME_BUSY, str(exc) or "All sandbox instances are busy") from None
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database unavailable during %s: %s", run.handler_name, exc)
        raise ServiceError(ErrorCode.UNAVAILABLE, "Database unavailable") from None


def _optimistic_segment(run: HandlerRun, step: Step) -> SegmentOutcome | None:
    """None when another process committed to the panel while this segment ran."""
    state, version = read_state(run.panel_pk, lock=False)
    result = step(state)
    if result.status == "error":
        return result, _unchanged(state, version), _error_of(result)
    try:
        with transaction.atomic():
            return _settled(run, _commit_segment(run, state, version, result))
    except Conflict:
        _abandon(result)
        return None


def _locked_segment(run: HandlerRun, step: Step) -> SegmentOutcome:
    with transaction.atomic():
        state, version = read_state(run.panel_pk, lock=True)
        if run.waiting is not None:
            suspensions.claim(run)  # Lost (nothing written) when another process finishes the handler
        result = step(state)
        if result.status == "error":
            return _settled(run, (result, _unchanged(state, version), _error_of(result)))
        return _settled(run, _commit_segment(run, state, version, result))


def _settled(run: HandlerRun, outcome: SegmentOutcome) -> SegmentOutcome:
    """Store a handler that now waits, or drop the row of one that waited, in the segment's transaction."""
    result, _, failure = outcome
    if run.waiting is not None or result.status == "suspended":
        suspensions.settle(run, result, committed=failure is None)
    return outcome


def _commit_segment(run: HandlerRun, state: dict[str, Any], version: int, result: ExecutionResult) -> SegmentOutcome:
    """Apply inside the caller's transaction; a refused batch leaves the row untouched."""
    ref = PanelRef(run.panel_pk, run.workspace_slug, run.panel_id)
    try:
        commit = apply_batch(ref, run.definition, state, version, result, capability_set(tuple(run.capabilities)))
    except BatchRefused as failed:
        return result, _unchanged(state, version), failed.error
    return result, commit, None


def _error_of(result: ExecutionResult) -> dict[str, Any] | None:
    return None if result.error is None else dict(result.error)


def _unchanged(state: dict[str, Any], version: int) -> Commit:
    """A failed segment commits nothing: the panel stays at the version it read."""
    return Commit(state, version)


def _context(run: HandlerRun, state: dict[str, Any]) -> ExecutionContext:
    return ExecutionContext(
        panel_id=sandbox_key(run.workspace_slug, run.panel_id),
        handler_name=run.handler_name,
        state=state,
        args=run.args,
        capabilities=run.capabilities,
        scope=run.scope,
        extensions=extension_service.methods_for(run.definition),
        tenant=run.workspace_slug,
    )


def _audit_failure(run: HandlerRun, error: dict[str, Any]) -> None:
    if error.get("code") != ErrorCode.PERMISSION_DENIED:
        return
    AuditRecord.record(
        workspace=run.workspace_slug,
        panel=run.panel_id,
        handler=run.handler_name,
        user=run.actor,
        action="capability",
        resource=str(error.get("resource") or ""),
        outcome=AuditOutcome.DENIED,
        reason=str(error.get("message", "")),
    )


def _abandon(result: ExecutionResult) -> None:
    if result.status == "suspended" and result.suspension:
        get_runtime().cancel(result.suspension["suspension_id"])


@in_worker
def run_segment(run: HandlerRun, resume: dict[str, Any] | None) -> tuple[ExecutionResult, Commit | None, Any]:
    runtime = get_runtime()
    if resume is None:
        def step(state: dict[str, Any]) -> ExecutionResult:
            return runtime.execute(run.code, _context(run, state))
    else:
        def step(state: dict[str, Any]) -> ExecutionResult:
            return runtime.resume(resume["suspension_id"], ok=resume["ok"], value=resume.get("value"),
                                  error=resume.get("error"), state=state, error_code=resume.get("error_code"))
    try:
        result, commit, failure = _exclusive_segment(run, step, repeatable=resume is None)
    except suspensions.Lost:
        runtime.cancel(str(resume["suspension_id"]) if resume else "")
        raise
    if failure is not None:
        _abandon(result)
        _audit_failure(run, failure)
    return result, commit, failure
