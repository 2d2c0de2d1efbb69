"""Run only the scheduler loop: the panels' schedules, without serving HTTP or WebSockets."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from workspaces.services.panels import shutdown_workers
from workspaces.services.publish import start_server_publisher
from workspaces.services.scheduler import Scheduler
from workspaces.services.suspension_loop import SuspensionLoop


class Command(BaseCommand):
    help = (
        "Run the panels' schedules and nothing else, for a deployment that keeps them apart from the "
        "web processes (set SCHEDULER_ENABLED=false there, or keep both: each tick runs once either way). "
        "Any number may run against one database. On SIGTERM or SIGINT it stops claiming ticks, lets "
        "running ones finish for up to SHUTDOWN_GRACE_SECONDS and exits 0."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        from workspaces.services.sandbox import get_runtime

        get_runtime()  # warm the sandbox pool before the first tick
        self.stdout.write("Nexus scheduler running", ending="\n")
        self.stdout.flush()
        asyncio.run(self._run())
        shutdown_workers()
        self.stdout.write("Nexus scheduler stopped")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start_server_publisher(loop)
        scheduler = Scheduler()
        waiting = SuspensionLoop()  # keeps the leases of the handlers it starts; hands them over on stop
        waiting_task = loop.create_task(waiting.run())

        def stop() -> None:
            scheduler.stop()
            waiting.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        await scheduler.run(grace_s=float(settings.NEXUS.SHUTDOWN_GRACE_SECONDS))
        waiting.stop()
        await waiting_task
