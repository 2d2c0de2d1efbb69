"""Panels' schedules: rows that follow the source, ticks claimed once across processes, runs recorded.

``sync`` keeps a panel's Schedule rows equal to its ``<Schedule>`` elements (called where the
panel service stores a source). ``claim_due`` is one transaction: it locks the due rows that
no other process holds (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite has a single writer),
decides for each whether the tick runs or is skipped, and advances ``next_run_at`` before it
commits, so a tick is never handed out twice. ``run`` executes a claimed tick through the
panel service (actor ``schedule``) and ``finish`` records how it went.

A tick is skipped, and counted, when the schedule's previous run still holds its lease
(no overlap), or when the process was away for a whole tick or more and the schedule says
``missed="skip"``; with ``missed="once"`` the first tick after the gap runs, once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runtime.metrics import SCHEDULE_LAG_SECONDS, SCHEDULE_RUNS_TOTAL
from workspaces.models import MissedPolicy, Panel, PanelStatus, Schedule
from workspaces.nxml import PanelDefinition
from workspaces.nxml.schedules import next_fire_time
from workspaces.nxml.tree import ScheduleDef

# panels calls sync() while storing a source, so each module reaches the other through its name.
from workspaces.services import panels as panel_service
from workspaces.services import quotas
from workspaces.services.errors import ErrorCode

logger = logging.getLogger("nexus.schedules")

ACTOR = "schedule"
SKIPPED = "skipped"
# How long a claimed run keeps its schedule busy without the claiming process renewing it.
LEASE_S = 15.0
CLAIM_BATCH = 100


@dataclass(frozen=True)
class Claim:
    """One tick handed to this process: run ``tool`` of the panel with ``args``."""

    schedule_pk: int
    panel_pk: int
    name: str
    tool: str
    args: dict[str, Any]
    due_at: datetime


# ---------------------------------------------------------------- following the source


def declaration_of(schedule: ScheduleDef) -> str:
    return hashlib.sha256(json.dumps(asdict(schedule), sort_keys=True).encode()).hexdigest()


def timing_of(row: Schedule) -> ScheduleDef:
    return ScheduleDef(name=row.name, tool=row.tool, every=row.every, interval=row.every_seconds, cron=row.cron,
                       timezone=row.timezone)


def sync(panel: Panel, definition: PanelDefinition, now: datetime | None = None) -> None:
    """Make the panel's rows match its declarations; call inside the transaction that stores the source.

    A schedule declared as before keeps its state (paused, next run, counts); a new or changed
    one starts over: paused unless enabled, first tick one period from now.
    """
    now = now or timezone.now()
    declared = {schedule.name: schedule for schedule in definition.schedules}
    Schedule.objects.filter(panel=panel).exclude(name__in=declared).delete()
    existing = {row.name: row for row in Schedule.objects.filter(panel=panel)}
    for name, schedule in declared.items():
        digest = declaration_of(schedule)
        row = existing.get(name)
        if row is not None and row.declaration == digest:
            continue
        fields = {
            "tool": schedule.tool, "every": schedule.every, "every_seconds": schedule.interval,
            "cron": schedule.cron, "timezone": schedule.timezone, "args": schedule.args,
            "missed": schedule.missed, "declaration": digest, "paused": not schedule.enabled,
            "next_run_at": next_fire_time(schedule, now), "running_until": None,
        }
        Schedule.objects.update_or_create(panel=panel, name=name, defaults=fields)


# ---------------------------------------------------------------- claiming ticks


def claim_due(now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[Claim]:
    """Take the due ticks no other process holds; each comes back to exactly one caller."""
    now = now or timezone.now()
    claims: list[Claim] = []
    skipped = 0
    with transaction.atomic():
        due = (Schedule.objects.select_for_update(skip_locked=True, of=("self",))
               .filter(paused=False, next_run_at__lte=now).exclude(panel__status=PanelStatus.STOPPED)
               .order_by("next_run_at")[:limit])
        for row in due:
            claim = _decide(row, now)
            if claim is None:
                skipped += 1
            else:
                claims.append(claim)
    if skipped:
        SCHEDULE_RUNS_TOTAL.labels("skipped").inc(skipped)
    return claims


def _decide(row: Schedule, now: datetime) -> Claim | None:
    """Advance the row past this tick; the claim when the tick runs, None when it is skipped."""
    timing = timing_of(row)
    due_at = row.next_run_at
    following = next_fire_time(timing, due_at)
    gap = following <= now  # a whole tick went by unclaimed: the process was away
    row.next_run_at = next_fire_time(timing, now) if gap else following
    busy = row.running_until is not None and row.running_until > now
    runs = not busy and not (gap and row.missed == MissedPolicy.SKIP)
    if runs:
        row.running_until = now + timedelta(seconds=LEASE_S)
    else:
        row.skipped += 1
    row.save(update_fields=["next_run_at", "running_until", "skipped"])
    if not runs:
        logger.info("schedule %s skipped a tick due %s (%s)", row, due_at.isoformat(),
                    "previous run still going" if busy else "missed while away")
        return None
    return Claim(row.pk, row.panel_id, row.name, row.tool, dict(row.args), due_at)


def renew_leases(schedule_pks: list[int], now: datetime | None = None) -> None:
    """Runs still going in this process keep their schedules busy."""
    if schedule_pks:
        until = (now or timezone.now()) + timedelta(seconds=LEASE_S)
        Schedule.objects.filter(pk__in=schedule_pks, running_until__isnull=False).update(running_until=until)


def next_due_at() -> datetime | None:
    """When the earliest active schedule is due (None: nothing scheduled)."""
    row = (Schedule.objects.filter(paused=False).exclude(panel__status=PanelStatus.STOPPED)
           .order_by("next_run_at").values_list("next_run_at", flat=True).first())
    return row


# ---------------------------------------------------------------- running a tick


async def run(claim: Claim, actor: str = ACTOR, observe_lag: bool = True) -> dict[str, Any]:
    """Run the claimed tick to its end and record it; the answer is the run's result body."""
    started = timezone.now()
    if observe_lag:
        SCHEDULE_LAG_SECONDS.observe(max((started - claim.due_at).total_seconds(), 0.0))
    try:
        panel = await panel_service.in_worker(_panel)(claim.panel_pk)
        outcome = await panel_service.run_tool(panel, claim.tool, claim.args, actor=actor)
        body = outcome.body()
    except quotas.QuotaExceeded as exc:  # the workspace is over a quota: this tick does not run
        body = {"status": SKIPPED, "error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    except panel_service.ServiceError as exc:
        body = {"status": "error", "error": {"code": exc.code, "message": exc.message}}
    except Exception:  # a scheduler bug must not end the loop; the run is recorded as failed
        logger.exception("schedule %s of panel %s crashed", claim.name, claim.panel_pk)
        body = {"status": "error", "error": {"code": ErrorCode.INTERNAL_ERROR, "message": "The scheduled run crashed"}}
    status = body["status"] if body["status"] in ("success", SKIPPED) else "error"
    SCHEDULE_RUNS_TOTAL.labels(status).inc()
    await panel_service.in_worker(finish)(claim, started, status, body.get("error"))
    return body


def _panel(panel_pk: int) -> Panel:
    try:
        panel: Panel = panel_service.hot_panels().get(pk=panel_pk)
    except Panel.DoesNotExist:
        raise panel_service.ServiceError(ErrorCode.NOT_FOUND, "Panel was deleted") from None
    return panel


def finish(claim: Claim, started: datetime, status: str, error: dict[str, Any] | None) -> None:
    Schedule.objects.filter(pk=claim.schedule_pk).update(
        running_until=None, last_run_at=started, last_status=status, last_error=error,
        runs=F("runs") + (0 if status == SKIPPED else 1), failures=F("failures") + (1 if status == "error" else 0),
        skipped=F("skipped") + (1 if status == SKIPPED else 0),
    )
    if status == "error":
        logger.warning("schedule %s of panel %s failed: %s", claim.name, claim.panel_pk, (error or {}).get("message"))


# ---------------------------------------------------------------- steering


def get_schedule(panel: Panel, name: str) -> Schedule:
    try:
        return Schedule.objects.select_related("panel").get(panel=panel, name=name)
    except Schedule.DoesNotExist:
        known = ", ".join(Schedule.objects.filter(panel=panel).values_list("name", flat=True)) or "none"
        raise panel_service.ServiceError(ErrorCode.NOT_FOUND, f"Panel '{panel.panel_id}' has no schedule '{name}' "
                                        f"(schedules: {known})") from None


def pause(schedule: Schedule) -> Schedule:
    Schedule.objects.filter(pk=schedule.pk).update(paused=True)
    schedule.refresh_from_db()
    return schedule


def resume(schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Run again from now on: the ticks that fell in the pause are not caught up."""
    with transaction.atomic():
        row = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if row.paused:
            row.paused = False
            row.next_run_at = next_fire_time(timing_of(row), now or timezone.now())
            row.save(update_fields=["paused", "next_run_at"])
    schedule.refresh_from_db()
    return schedule


def claim_now(schedule: Schedule) -> Claim:
    """A tick outside the timetable (run now); refused while a run of the schedule is going."""
    now = timezone.now()
    with transaction.atomic():
        row = Schedule.objects.select_for_update(of=("self",)).select_related("panel").get(pk=schedule.pk)
        if row.panel.status == PanelStatus.STOPPED:
            raise panel_service.ServiceError(
                ErrorCode.INVALID_REQUEST, f"Panel '{row.panel.panel_id}' is stopped; start it to run its schedules")
        if row.running_until is not None and row.running_until > now:
            raise panel_service.ServiceError(
                ErrorCode.SCHEDULE_RUNNING, f"Schedule '{row.name}' is running now; run it again when that run ends")
        row.running_until = now + timedelta(seconds=LEASE_S)
        row.save(update_fields=["running_until"])
    return Claim(row.pk, row.panel_id, row.name, row.tool, dict(row.args), now)


async def run_now(schedule: Schedule, actor: str) -> dict[str, Any]:
    """Run the schedule's tool once, at once, recorded like a tick; ``actor`` is who asked."""
    claim = await panel_service.in_worker(claim_now)(schedule)
    return await run(claim, actor=actor, observe_lag=False)

