"""Process lifecycle: whether the server is draining, and how much work is still running."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

_lock = threading.Condition()
_running = 0
_draining = threading.Event()

# How long the sockets of a draining process take to close: spread so that their clients do
# not all reconnect to the other pods at the same instant; at most half the shutdown grace.
DRAIN_SPREAD_S = 5.0


class Reconnectable(Protocol):
    """An open client socket that can be asked to go and reconnect (elsewhere)."""

    def ask_to_reconnect(self, delay_s: float) -> None: ...


_sockets: set[Reconnectable] = set()


def is_draining() -> bool:
    return _draining.is_set()


def drain_spread(grace_s: float) -> float:
    return max(0.0, min(DRAIN_SPREAD_S, grace_s / 2))


def start_draining(spread_s: float = 0.0) -> None:
    """Refuse new work, and ask every open socket to reconnect, each at a random moment of the spread."""
    with _lock:
        _draining.set()
        sockets = list(_sockets)
    for socket in sockets:
        socket.ask_to_reconnect(random.uniform(0.0, spread_s))


def reset() -> None:
    """Forget a previous drain (tests that reuse one process)."""
    _draining.clear()


def watch_socket(socket: Reconnectable) -> bool:
    """Track an open socket until forget_socket; False (not tracked) when the process is draining."""
    with _lock:
        if _draining.is_set():
            return False
        _sockets.add(socket)
        return True


def forget_socket(socket: Reconnectable) -> None:
    with _lock:
        _sockets.discard(socket)


def open_sockets() -> int:
    with _lock:
        return len(_sockets)


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


_server_loop: asyncio.AbstractEventLoop | None = None


def mark_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop that serves requests for the life of the process."""
    global _server_loop
    _server_loop = loop


def is_server_loop(loop: asyncio.AbstractEventLoop) -> bool:
    return loop is _server_loop
