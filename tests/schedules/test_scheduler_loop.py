"""The scheduler loop in one process on the test database: ticks run on their own, then stop when asked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from workspaces.models import Panel, Schedule
from workspaces.services.scheduler import Scheduler


async def run_scheduler_for(seconds: float) -> None:
    scheduler = Scheduler(max_sleep_s=0.2)
    task = asyncio.ensure_future(scheduler.run(grace_s=10))
    await asyncio.sleep(seconds)
    scheduler.stop()
    await asyncio.wait_for(task, 15)


@pytest.mark.slow
def test_a_schedule_runs_on_its_own_in_one_process(ticker: Any) -> None:
    Schedule.objects.filter(panel=ticker).exclude(name="tick").update(paused=True)
    async_to_sync(run_scheduler_for)(4.5)
    row = Schedule.objects.get(panel=ticker, name="tick")
    # every="1s" for 4.5 s: four ticks (the first is one period after creation), give or take one.
    assert 3 <= row.runs <= 5, row.runs
    assert (row.failures, row.last_status, row.running_until) == (0, "success", None)
    assert Panel.objects.get(pk=ticker.pk).state["n"] == 2 * row.runs
