"""The activity log: what each panel's handlers did, newest first, a bounded number per panel.

Every finished run of a tool or lifecycle handler is kept with its actor, status, duration,
error code and the lines the handler wrote with ``$log``. The same lines go to the server
log (logger ``nexus.handlers``) at their level, with ``panel`` and ``handler`` fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from workspaces.models import Panel, PanelRun

logger = logging.getLogger("nexus.handlers")

RUNS_KEPT_PER_PANEL = 200
MAX_ERROR_MESSAGE = 2000
MAX_LOG_LINES = 100
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


def record(run: FinishedRun) -> PanelRun | None:
    """Store the run and drop the panel's runs beyond the newest RUNS_KEPT_PER_PANEL."""
    emit_logs(run)
    error = run.error or {}
    try:
        with transaction.atomic():
            entry = PanelRun.objects.create(
                panel_id=run.panel_pk, kind=run.kind, handler=run.handler[:128], actor=run.actor[:150],
                started_at=run.started_at, status=run.status, duration_ms=round(run.duration_ms, 2),
                error_code=str(error.get("code") or "")[:64],
                error_message=str(error.get("message") or "")[:MAX_ERROR_MESSAGE],
                logs=kept_lines(run.logs),
            )
            _prune(run.panel_pk)
    except IntegrityError:
        return None  # the panel was deleted meanwhile
    return entry


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


def runs_of(panel: Panel) -> QuerySet[PanelRun]:
    """The panel's kept runs, newest first."""
    return PanelRun.objects.filter(panel=panel).order_by("-id")
