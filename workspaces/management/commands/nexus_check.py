"""Start-up and operator checks: configuration, database, channel layer, sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
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


def check_production_settings() -> str:
    from nexus.config import unsafe_secrets

    config = settings.NEXUS
    problems = ["DEBUG=true (set DEBUG=false)"] if config.DEBUG else []
    unsafe = unsafe_secrets(config)
    if unsafe:
        problems.append(f"{', '.join(unsafe)}: placeholder or development value (set real secrets)")
    if problems:
        raise RuntimeError("; ".join(problems))
    return "debug off, secrets set"


def check_cache_dir() -> str:
    # The runtime's own test: a directory it creates (0700), owned by this user, writable by nobody else.
    from workspaces.services.sandbox import module_cache_is_private

    directory = Path(settings.NEXUS.module_cache_dir)
    if not module_cache_is_private(directory):
        raise RuntimeError(
            f"{directory} is not a private directory of this user: the module cache would be disabled "
            "(CACHE_DIR must be writable, or hold a subdirectory of this user's with mode 0700)"
        )
    return f"{directory} private to this user: the module cache is used"


def check_memory() -> str:
    from nexus.capacity import memory_budget
    from nexus.health import rss_bytes
    from workspaces.services.sandbox import get_runtime

    config = get_runtime().config
    budget = memory_budget(config.max_instances, config.memory_limit_mb, rss_bytes(), settings.NEXUS.CGROUP_MEMORY_MAX)
    if not budget.fits:
        raise RuntimeError(budget.describe())
    return budget.describe()


class Command(BaseCommand):
    help = (
        "Check that this Nexus process can serve: configuration, database, channel layer (a real round trip), "
        "and a sandbox self-test. Prints one line per check and exits 1 if any fails. With --startup it also "
        "checks that migrations are applied, that the module cache directory is usable and that a full sandbox "
        "pool fits in the container's memory limit; --deploy adds to those that DEBUG is off and no secret holds "
        "a placeholder or development value."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--startup", action="store_true", help="also check migrations, the module cache and the memory budget"
        )
        parser.add_argument(
            "--deploy", action="store_true", help="--startup, plus production settings (DEBUG off, real secrets)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checks: list[tuple[str, Callable[[], str]]] = [
            ("config", check_config),
            ("database", check_database),
            ("channel layer", check_channel_layer),
            ("sandbox", check_sandbox),
        ]
        if options["deploy"] or options["startup"]:
            checks[2:2] = [("migrations", check_migrations)]
            checks += [("cache dir", check_cache_dir), ("memory", check_memory)]
        if options["deploy"]:
            checks.insert(1, ("production", check_production_settings))
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
