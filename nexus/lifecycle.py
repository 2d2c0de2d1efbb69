"""Process lifecycle: whether the server is draining, and how much work is still running."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Condition()
_running = 0
_draining = threading.Event()


def is_draining() -> bool:
    return _draining.is_set()


def start_draining() -> None:
    _draining.set()


def reset() -> None:
    """Forget a previous drain (tests that reuse one process)."""
    _draining.clear()


def running_executions() -> int:
    with _lock:
        return _running


@contextmanager
def tracked_execution() -> Iterator[None]:
    global _running
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            _lock.notify_all()


def wait_until_idle(timeout_s: float) -> bool:
    """Block until no execution runs, or the timeout passes; True when idle."""
    deadline = time.monotonic() + timeout_s
    with _lock:
        while _running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _lock.wait(remaining)
    return True


_server_loop: asyncio.AbstractEventLoop | None = None


def mark_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop that serves requests for the life of the process."""
    global _server_loop
    _server_loop = loop


def is_server_loop(loop: asyncio.AbstractEventLoop) -> bool:
    return loop is _server_loop
