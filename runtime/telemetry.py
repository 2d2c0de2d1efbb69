"""Execution figures the runtime buffers for Prometheus, without importing prometheus_client.

The runtime is a plain library: importing it must stay cheap. Runtimes count their
executions here and ``runtime.metrics`` (which imports prometheus_client) pulls the counts
whenever the registry is collected.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .execution import ExecutionResult

# Upper bounds, in seconds, of the nexus_handler_duration_seconds buckets (+Inf implied).
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Label values of nexus_host_calls_total{function}, in the order runtimes count them.
HOST_FUNCTIONS: tuple[str, ...] = ("emit", "log", "ext", "view.setFilter", "view.scrollTo", "view.focus")

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def register(runtime: Any) -> None:
    """Track an open runtime; it must offer ``flush_metrics()`` and ``gauge_figures()``."""
    _live.add(runtime)


def unregister(runtime: Any) -> None:
    _live.discard(runtime)


def live_runtimes() -> list[Any]:
    return list(_live)


# Slot in the host call counts of each $view command.
_VIEW_SLOT = {"setFilter": 3, "scrollTo": 4, "focus": 5}


@dataclass(frozen=True, slots=True)
class Totals:
    executions: int
    errors: int
    duration_us: int
    cache_hits: int
    cache_misses: int


class ExecutionCounters:
    """One runtime's execution counts: totals for ``stats()`` and buffered Prometheus updates.

    ``record`` runs once per execution under one lock; ``flush`` hands the buffered updates
    to ``runtime.metrics`` before every collection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions = 0
        self._errors = 0
        self._duration_us = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self._outcomes: dict[tuple[str, str], int] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._seconds = 0.0
        self._calls = [0] * len(HOST_FUNCTIONS)

    def record(self, result: ExecutionResult, duration_us: int, cache_hit: bool | None) -> None:
        """Count an execution; ``cache_hit`` is None when no handler lookup took place."""
        code = result.error["code"] if result.error else ""
        key = (result.status, code)
        seconds = duration_us / 1e6
        bucket = bisect.bisect_left(DURATION_BUCKETS, seconds)
        with self._lock:
            self._executions += 1
            self._duration_us += duration_us
            if code:
                self._errors += 1
            if cache_hit is True:
                self.cache_hits += 1
            elif cache_hit is False:
                self.cache_misses += 1
            self._outcomes[key] = self._outcomes.get(key, 0) + 1
            self._buckets[bucket] += 1
            self._seconds += seconds
            if result.events or result.logs or result.view_commands or result.suspension:
                _count_calls(result, self._calls)

    def totals(self) -> Totals:
        with self._lock:
            return Totals(self._executions, self._errors, self._duration_us, self.cache_hits, self.cache_misses)

    def take_pending(self) -> tuple[dict[tuple[str, str], int], list[int], float, list[int]]:
        """The buffered (outcomes, duration buckets, seconds, host calls), reset to zero."""
        with self._lock:
            pending = (self._outcomes, self._buckets, self._seconds, self._calls)
            self._outcomes, self._buckets = {}, [0] * (len(DURATION_BUCKETS) + 1)
            self._seconds, self._calls = 0.0, [0] * len(HOST_FUNCTIONS)
        return pending


def _count_calls(result: ExecutionResult, counts: list[int]) -> None:
    """Per-function sandbox API calls, as far as the result shows them."""
    counts[0] += len(result.events)
    counts[1] += len(result.logs)
    if result.suspension:
        counts[2] += 1
    for command in result.view_commands:
        counts[_VIEW_SLOT[command["type"]]] += 1
