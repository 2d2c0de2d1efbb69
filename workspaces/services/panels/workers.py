"""The thread hop: blocking database and sandbox work runs in the service's own pool."""

from __future__ import annotations

import functools
import gc
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from workspaces.services import activity

_executor: ThreadPoolExecutor | None = None


def _segment_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.NEXUS.MAX_INSTANCES + 4, thread_name_prefix="nexus-exec"
        )
    return _executor


def shutdown_workers() -> None:
    """Let the worker threads finish and end (their database connections close with them)."""
    global _executor
    executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=True)
    activity.shutdown()
    # A thread's connection wrapper sits in reference cycles: collect it now, which closes it.
    gc.collect()


def in_worker(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run blocking database and sandbox work off the event loop, in its own thread pool."""
    built: tuple[ThreadPoolExecutor, Callable[..., Awaitable[Any]]] | None = None

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal built
        executor = _segment_executor()
        if built is None or built[0] is not executor:  # built once per pool, not per call
            built = (executor, database_sync_to_async(func, thread_sensitive=False, executor=executor))
        return await built[1](*args, **kwargs)

    return wrapper
