"""The scheduler loop: claim due ticks, run them on the event loop, keep their leases, sleep until the next.

One loop runs in every ``nexus_serve`` process (``start_scheduler``) or alone under
``manage.py nexus_scheduler``. Any number of them may share a database: ticks are claimed
in ``workspaces.services.schedules.claim_due``, one process per tick. The loop stops claiming
when the process drains; runs already started finish as any other execution does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from django.db import DatabaseError
from django.utils import timezone

from nexus import lifecycle
from workspaces.services import schedules
from workspaces.services.panels import in_worker

logger = logging.getLogger("nexus.scheduler")

# Longest sleep between two looks at the table: new, resumed or edited schedules are seen this soon.
MAX_SLEEP_S = 1.0
MIN_SLEEP_S = 0.01
RETRY_AFTER_ERROR_S = 2.0


class Scheduler:
    def __init__(self, max_sleep_s: float = MAX_SLEEP_S) -> None:
        self.max_sleep_s = max_sleep_s
        self.running: dict[int, asyncio.Task[object]] = {}
        self._stopping = asyncio.Event()
        self._renewed_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set() or lifecycle.is_draining()

    async def run(self, grace_s: float | None = None) -> None:
        """Loop until stopped or draining, then wait (up to ``grace_s``) for the runs this process started."""
        logger.info("scheduler started")
        while not self.stopping:
            try:
                delay = await self.step()
            except DatabaseError as exc:
                logger.warning("scheduler: database unavailable (%s); retrying in %.0f s", exc, RETRY_AFTER_ERROR_S)
                delay = RETRY_AFTER_ERROR_S
            except Exception:  # the loop outlives any one bad pass
                logger.exception("scheduler pass failed")
                delay = RETRY_AFTER_ERROR_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        if self.running:
            _, pending = await asyncio.wait(list(self.running.values()), timeout=grace_s)
            if pending:
                logger.warning("scheduler: %d run(s) still going at shutdown", len(pending))
        logger.info("scheduler stopped")

    async def step(self) -> float:
        """One pass: renew leases, claim and start due ticks; returns how long to sleep."""
        await self._renew()
        claims = await in_worker(schedules.claim_due)()
        for claim in claims:
            self._start(claim)
        if len(claims) >= schedules.CLAIM_BATCH:
            return 0.0
        due = await in_worker(schedules.next_due_at)()
        if due is None:
            return self.max_sleep_s
        return min(max((due - timezone.now()).total_seconds(), MIN_SLEEP_S), self.max_sleep_s)

    def _start(self, claim: schedules.Claim) -> None:
        task: asyncio.Task[object] = asyncio.create_task(schedules.run(claim))
        self.running[claim.schedule_pk] = task
        task.add_done_callback(lambda _: self.running.pop(claim.schedule_pk, None))

    async def _renew(self) -> None:
        if self.running and time.monotonic() - self._renewed_at >= schedules.LEASE_S / 3:
            await in_worker(schedules.renew_leases)(list(self.running))
            self._renewed_at = time.monotonic()


_loop_task: asyncio.Task[None] | None = None


def start_scheduler(loop: asyncio.AbstractEventLoop) -> Scheduler:
    """Called by the server with its event loop: the loop runs until the server drains."""
    global _loop_task
    scheduler = Scheduler()
    _loop_task = loop.create_task(scheduler.run())
    return scheduler
