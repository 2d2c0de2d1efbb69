"""Health endpoints: liveness, readiness and a summary.

Readiness means "this pod can serve requests": the database answers and the sandbox is
loaded. It never waits for a sandbox instance (a busy pool is a reason to queue, not to
take the pod out of the Service) and never asks Redis (the channel layer is shared by every
pod: a Redis outage would otherwise make the whole fleet unready at once, while REST still
serves). The summary, ``/health``, reports both and is what dashboards and alerts read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

import nexus

logger = logging.getLogger(__name__)
STARTED_AT = time.monotonic()
CHECK_TIMEOUT_S = 3.0


def rss_bytes() -> int:
    """Resident memory of this process right now (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_channel_layer() -> None:
    """A real round trip through the layer: send to a fresh channel and read it back."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()  # the layer's own prefix: channels-redis reads only that one
    await layer.send(channel, {"type": "health.probe"})
    await layer.receive(channel)


def check_runtime() -> None:
    """The engine, guest module and pool exist; no instance is taken, so busy instances do not matter."""
    from workspaces.services.sandbox import get_runtime

    get_runtime().stats()


async def _run_check(name: str, check: Any) -> tuple[str, str | None]:
    try:
        if asyncio.iscoroutinefunction(check):
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        else:
            await asyncio.wait_for(sync_to_async(check)(), CHECK_TIMEOUT_S)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        logger.warning("health check %s failed: %s", name, error)
        return name, error
    return name, None


READINESS_CHECKS = ("database", "runtime")
SUMMARY_CHECKS = ("database", "channelLayer")


async def run_checks(names: tuple[str, ...]) -> dict[str, str | None]:
    checks = {"database": check_database, "channelLayer": check_channel_layer, "runtime": check_runtime}
    results = await asyncio.gather(*(_run_check(name, checks[name]) for name in names))
    return dict(results)


def _checks_body(results: dict[str, str | None]) -> dict[str, Any]:
    return {name: ("ok" if error is None else {"status": "fail", "error": error}) for name, error in results.items()}


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive", "uptime": round(time.monotonic() - STARTED_AT, 3)})


async def ready(request: HttpRequest) -> JsonResponse:
    results = await run_checks(READINESS_CHECKS)
    ok = all(error is None for error in results.values())
    body = {"status": "ready" if ok else "unavailable", "checks": _checks_body(results)}
    return JsonResponse(body, status=200 if ok else 503)


def _summary(database_ok: bool) -> dict[str, Any]:
    """Live figures; the sandbox's come from this process, so they are there even when degraded."""
    from workspaces.services.sandbox import runtime_summary
    from workspaces.services.stats import active_panel_count
    from workspaces.services.suspensions import update_gauges

    return {
        "activePanels": active_panel_count() if database_ok else None,
        "runtime": runtime_summary(),
        "suspensions": update_gauges() if database_ok else None,
    }


async def health(request: HttpRequest) -> JsonResponse:
    results = await run_checks(SUMMARY_CHECKS)
    ok = all(error is None for error in results.values())
    body: dict[str, Any] = {
        "status": "healthy" if ok else "unhealthy",
        "version": nexus.__version__,
        "uptime": round(time.monotonic() - STARTED_AT, 3),
        "activePanels": None,
        "maxPanels": settings.NEXUS.MAX_PANELS,
        "runtime": None,
        "memory": {"rssBytes": rss_bytes()},
        "checks": _checks_body(results),
    }
    body.update(await sync_to_async(_summary)(results["database"] is None))
    return JsonResponse(body, status=200 if ok else 503)
