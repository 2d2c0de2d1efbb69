"""Execution figures the runtime buffers for Prometheus, without importing prometheus_client.

The runtime is a plain library: importing it must stay cheap. Runtimes count their
executions here and ``runtime.metrics`` (which imports prometheus_client) pulls the counts
whenever the registry is collected.
"""

from __future__ import annotations

import weakref
from typing import Any

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
