"""The activity log: what each panel's handlers did, newest first, a bounded number per panel.

Every finished run of a tool or lifecycle handler is kept with its actor, status, duration,
error code and the lines the handler wrote with ``$log``. The same lines go to the server
log (logger ``nexus.handlers``) at their level, with ``panel`` and ``handler`` fields.

Runs are written off the trigger path: ``submit`` queues a run and one writer thread stores
what has gathered in GATHER_S in a single transaction, so a busy server costs one commit per
batch, not one per run, and no caller waits for it. Readers in this process call ``flush`` first (as
``runs_of`` does), so they see every run that finished before they asked. A batch the
database refuses (it is down) is dropped with a warning: the log is a record for people,
never a reason to fail a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.db.models import QuerySet

from workspaces.models import Panel, PanelRun

logger = logging.getLogger("nexus.handlers")

RUNS_KEPT_PER_PANEL = 200
MAX_ERROR_MESSAGE = 2000
MAX_LOG_LINES = 100
FLUSH_TIMEOUT_S = 10.0
# How long the writer lets runs gather before it stores them (a reader asking cuts it short).
GATHER_S = 0.05
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class FinishedRun:
    """One handler run as the panel service saw it end."""

    panel_pk: int
    panel: str  # workspace/panel id
    kind: str  # RunKind
    handler: str
    actor: str
    started_at: datetime
    status: str
    duration_ms: float
    error: dict[str, Any] | None
    logs: Sequence[Mapping[str, str]]  # the runtime's log lines: {level, message}


def emit_logs(run: FinishedRun) -> None:
    """The handler's $log lines, on the server log at their own level."""
    for line in run.logs:
        level = _LEVELS.get(line.get("level", ""), logging.INFO)
        logger.log(level, "%s %s: %s", run.panel, run.handler, line.get("message", ""),
                   extra={"panel": run.panel, "handler": run.handler})


# ---------------------------------------------------------------- the writer

_queued: list[FinishedRun] = []
_changed = threading.Condition()
_draining = False  # a drain is scheduled or running; these four are guarded by _changed
_submitted = 0
_settled = 0  # runs stored or dropped, in the order they were submitted
_writer: ThreadPoolExecutor | None = None
_hurry = threading.Event()


def submit(run: FinishedRun) -> None:
    """Log the run's lines now and queue the run for storing; returns at once."""
    global _draining, _submitted
    emit_logs(run)
    with _changed:
        _queued.append(run)
        _submitted += 1
        if _draining:
            return
        _draining = True
    _writer_pool().submit(_drain)


def flush(timeout: float = FLUSH_TIMEOUT_S) -> None:
    """Wait until every run submitted so far in this process is stored (or dropped)."""
    with _changed:
        target = _submitted
        if _settled < target:
            _hurry.set()
        _changed.wait_for(lambda: _settled >= target, timeout)


def shutdown() -> None:
    """Store what is queued and end the writer thread (its database connection closes with it)."""
    global _writer
    flush()
    writer, _writer = _writer, None
    if writer is not None:
        writer.shutdown(wait=True)


def _writer_pool() -> ThreadPoolExecutor:
    global _writer
    if _writer is None:
        _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-activity")
    return _writer


def _drain() -> None:
    global _draining, _settled
    while True:
        _hurry.wait(GATHER_S)
        _hurry.clear()
        with _changed:
            batch = list(_queued)
            _queued.clear()
            if not batch:
                _draining = False
                return
        try:
            _store(batch)
        finally:
            with _changed:
                _settled += len(batch)
                _changed.notify_all()


def _store(batch: list[FinishedRun]) -> None:
    close_old_connections()
    try:
        try:
            _write(batch)
        except IntegrityError:  # a panel was deleted meanwhile: store the others one by one
            for run in batch:
                try:
                    _write([run])
                except IntegrityError:
                    pass
    except DatabaseError as exc:
        logger.warning("activity of %d run(s) not stored: %s", len(batch), exc)


def _write(batch: list[FinishedRun]) -> None:
    with transaction.atomic():
        PanelRun.objects.bulk_create([_row(run) for run in batch])
        for panel_pk in {run.panel_pk for run in batch}:
            _prune(panel_pk)


def _row(run: FinishedRun) -> PanelRun:
    error = run.error or {}
    return PanelRun(
        panel_id=run.panel_pk, kind=run.kind, handler=run.handler[:128], actor=run.actor[:150],
        started_at=run.started_at, status=run.status, duration_ms=round(run.duration_ms, 2),
        error_code=str(error.get("code") or "")[:64],
        error_message=str(error.get("message") or "")[:MAX_ERROR_MESSAGE],
        logs=kept_lines(run.logs),
    )


def kept_lines(logs: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The first MAX_LOG_LINES lines, and a note of how many more there were."""
    kept = [{"level": line.get("level", "info"), "message": line.get("message", "")} for line in logs[:MAX_LOG_LINES]]
    if len(logs) > MAX_LOG_LINES:
        kept.append({"level": "warn", "message": f"{len(logs) - MAX_LOG_LINES} more line(s) not kept"})
    return kept


def _prune(panel_pk: int) -> None:
    newest = PanelRun.objects.filter(panel_id=panel_pk).order_by("-id").values_list("id", flat=True)
    oldest_kept = list(newest[RUNS_KEPT_PER_PANEL - 1:RUNS_KEPT_PER_PANEL])
    if oldest_kept:
        PanelRun.objects.filter(panel_id=panel_pk, id__lt=oldest_kept[0]).delete()


# ---------------------------------------------------------------- reading


def runs_of(panel: Panel) -> QuerySet[PanelRun]:
    """The panel's kept runs, newest first, including every run this process has finished."""
    flush()
    return PanelRun.objects.filter(panel=panel).order_by("-id")
