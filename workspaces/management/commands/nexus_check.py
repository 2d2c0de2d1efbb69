"""Start-up and operator checks: configuration, database, channel layer, sandbox."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def check_config() -> str:
    config = settings.NEXUS
    auth = "on" if config.AUTH_ENABLED else "OFF"
    layer = "redis" if config.redis_enabled else "in-memory"
    return f"auth {auth}, debug {'on' if config.DEBUG else 'off'}, channel layer {layer}"


def check_database() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return f"{connection.vendor} reachable"


def check_migrations() -> str:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending[:5])
        raise RuntimeError(f"{len(pending)} migration(s) not applied: {names} (run manage.py migrate)")
    return "all applied"


def check_channel_layer() -> str:
    from nexus.health import check_channel_layer as probe

    asyncio.run(asyncio.wait_for(probe(), 5))
    return "round trip ok"


def check_sandbox() -> str:
    from workspaces.services.sandbox import self_test

    self_test()
    return "self-test handler ran"


def check_cache_dir() -> str:
    directory = settings.NEXUS.CACHE_DIR
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
        pass
    return f"{directory} writable"


class Command(BaseCommand):
    help = (
        "Check that this Nexus process can serve: configuration, database, channel layer (a real round trip), "
        "and a sandbox self-test. Prints one line per check and exits 1 if any fails. With --deploy it also "
        "checks that migrations are applied and CACHE_DIR is writable (the container runs this before serving)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deploy", action="store_true", help="also check migrations and the cache directory")

    def handle(self, *args: Any, **options: Any) -> None:
        checks: list[tuple[str, Callable[[], str]]] = [
            ("config", check_config),
            ("database", check_database),
            ("channel layer", check_channel_layer),
            ("sandbox", check_sandbox),
        ]
        if options["deploy"]:
            checks[2:2] = [("migrations", check_migrations)]
            checks.append(("cache dir", check_cache_dir))
        failed = [name for name, check in checks if not self._run(name, check)]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS(f"all {len(checks)} checks passed"))

    def _run(self, name: str, check: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail = check()
        except Exception as exc:
            self.stdout.write(f"{self.style.ERROR('fail')}  {name:<14} {type(exc).__name__}: {exc}")
            return False
        elapsed = (time.perf_counter() - started) * 1000
        self.stdout.write(f"{self.style.SUCCESS('ok  ')}  {name:<14} {detail} ({elapsed:.0f} ms)")
        return True
