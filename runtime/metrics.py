"""Every nexus_* Prometheus metric of the product, in the default registry (docs/operations.md, "Metrics").

The runtime feeds the handler, instance, cache, memory, host-call and error metrics: it
counts in plain Python (``runtime.telemetry``) and the collector below applies the counts
each time the registry is read, so executions never wait on Prometheus and a process that
never imports this module never loads prometheus_client. The web layer updates
``PANELS_ACTIVE`` and ``WS_CONNECTIONS``, the extension registry ``EXT_CALLS_TOTAL``, the
scheduler ``SCHEDULE_RUNS_TOTAL`` and ``SCHEDULE_LAG_SECONDS``.
No label carries a panel id or any other unbounded value.

Importing this module twice, or after another module registered one of these names,
returns the collectors already registered instead of failing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .telemetry import DURATION_BUCKETS, HOST_FUNCTIONS, live_runtimes

_C = TypeVar("_C", Counter, Gauge, Histogram)


class _BufferedUpdates(Collector):
    """Applies the counts buffered by live runtimes before the registry reads the metrics.

    Registered before the metrics below, so the registry runs it first on every collect.
    """

    def collect(self) -> Iterable[Metric]:
        for runtime in live_runtimes():
            runtime.flush_metrics()
        return []

    def describe(self) -> Iterable[Metric]:
        return []


BUFFERED_UPDATES = _BufferedUpdates()
try:
    REGISTRY.register(BUFFERED_UPDATES)
except ValueError:  # pragma: no cover - registered by an earlier import of this module
    pass


def _registered(kind: type[_C], name: str, documentation: str, labels: tuple[str, ...] = (), **extra: Any) -> _C:
    try:
        return kind(name, documentation, labels, **extra)
    except ValueError:
        # Already registered (module reloaded, or defined elsewhere first): reuse it.
        names = getattr(REGISTRY, "_names_to_collectors", {})
        for candidate in (name, f"{name}_total"):
            existing = names.get(candidate)
            if isinstance(existing, kind):
                return existing
        raise


HANDLER_EXECUTIONS_TOTAL = _registered(
    Counter,
    "nexus_handler_executions_total",
    "Handler execution segments by outcome; code is the error code, empty on success.",
    ("status", "code"),
)
HANDLER_DURATION_SECONDS = _registered(
    Histogram,
    "nexus_handler_duration_seconds",
    "Wall-clock duration of handler execution segments.",
    buckets=DURATION_BUCKETS,
)
RUNTIME_INSTANCES = _registered(
    Gauge,
    "nexus_runtime_instances",
    "Sandbox instances by state: idle, busy (running or suspended) and suspended.",
    ("state",),
)
RUNTIME_WAITING_EXECUTIONS = _registered(
    Gauge,
    "nexus_runtime_waiting_executions",
    "Executions waiting for a free sandbox instance (all busy); they fail with RUNTIME_BUSY after a while.",
)
WASM_CACHE_HIT_RATE = _registered(
    Gauge,
    "nexus_wasm_cache_hit_rate",
    "Share of executions that found their handler already compiled in the instance.",
)
RUNTIME_MEMORY_PEAK_BYTES = _registered(
    Gauge,
    "nexus_runtime_memory_peak_bytes",
    "Largest linear memory reached by a sandbox instance.",
)
HOST_CALLS_TOTAL = _registered(
    Counter,
    "nexus_host_calls_total",
    "Sandbox API calls made by handlers, by function.",
    ("function",),
)
ERRORS_TOTAL = _registered(
    Counter,
    "nexus_errors_total",
    "Errors by code.",
    ("code",),
)
PANELS_ACTIVE = _registered(
    Gauge,
    "nexus_panels_active",
    "Panels currently running.",
)
WS_CONNECTIONS = _registered(
    Gauge,
    "nexus_ws_connections",
    "Open WebSocket connections.",
)
EXT_CALLS_TOTAL = _registered(
    Counter,
    "nexus_ext_calls_total",
    "Extension calls made by handlers, by extension, method and outcome.",
    ("extension", "method", "status"),
)

SCHEDULE_RUNS_TOTAL = _registered(
    Counter,
    "nexus_schedule_runs_total",
    "Scheduled ticks by outcome: success, error, or skipped (previous run still going, or missed while away).",
    ("status",),
)
SCHEDULE_LAG_SECONDS = _registered(
    Histogram,
    "nexus_schedule_lag_seconds",
    "How late scheduled runs start: start time minus due time.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
for _status in ("success", "error", "skipped"):
    SCHEDULE_RUNS_TOTAL.labels(_status)

QUOTA_REJECTIONS_TOTAL = _registered(
    Counter,
    "nexus_quota_rejections_total",
    "Work refused because a workspace reached one of its quotas, by quota.",
    ("quota",),
)
QUOTA_CHECK_FAILURES_TOTAL = _registered(
    Counter,
    "nexus_quota_check_failures_total",
    "Quota checks that could not reach Redis and let the work through.",
)
for _quota in ("concurrent", "executions", "sandbox_ms", "http_calls"):
    QUOTA_REJECTIONS_TOTAL.labels(_quota)

SUSPENSIONS = _registered(
    Gauge,
    "nexus_suspensions",
    "Handlers waiting on extension calls, stored in the database: owned by this process (local), "
    "by another live process (remote), or with an expired lease, about to be taken over (expired).",
    ("state",),
)
SUSPENSION_TAKEOVERS_TOTAL = _registered(
    Counter,
    "nexus_suspension_takeovers_total",
    "Waiting handlers this process took over from a process whose lease ran out.",
)
for _state in ("local", "remote", "expired"):
    SUSPENSIONS.labels(_state)


def add_durations(bucket_counts: list[int], total_seconds: float, observe: Callable[[float], None]) -> None:
    """Add pre-bucketed observations to HANDLER_DURATION_SECONDS.

    ``bucket_counts[i]`` counts observations whose smallest upper bound is
    ``DURATION_BUCKETS[i]`` (the last index is +Inf). prometheus_client has no public bulk
    API; its histogram structure is used when present, else each observation is replayed.
    """
    buckets = getattr(HANDLER_DURATION_SECONDS, "_buckets", None)
    total = getattr(HANDLER_DURATION_SECONDS, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bucket_counts):
        bounds = (*DURATION_BUCKETS, float("inf"))
        for index, count in enumerate(bucket_counts):
            for _ in range(count):
                observe(min(bounds[index], DURATION_BUCKETS[-1] * 2))
        return
    for index, count in enumerate(bucket_counts):
        if count:
            buckets[index].inc(count)
    total.inc(total_seconds)


__all__ = [
    "BUFFERED_UPDATES",
    "DURATION_BUCKETS",
    "ERRORS_TOTAL",
    "EXT_CALLS_TOTAL",
    "HANDLER_DURATION_SECONDS",
    "HANDLER_EXECUTIONS_TOTAL",
    "HOST_CALLS_TOTAL",
    "HOST_FUNCTIONS",
    "PANELS_ACTIVE",
    "QUOTA_CHECK_FAILURES_TOTAL",
    "QUOTA_REJECTIONS_TOTAL",
    "RUNTIME_INSTANCES",
    "RUNTIME_MEMORY_PEAK_BYTES",
    "RUNTIME_WAITING_EXECUTIONS",
    "SCHEDULE_LAG_SECONDS",
    "SCHEDULE_RUNS_TOTAL",
    "WASM_CACHE_HIT_RATE",
    "WS_CONNECTIONS",
    "add_durations",
]


def _figure(name: str) -> float:
    return float(sum(runtime.gauge_figures()[name] for runtime in live_runtimes()))


def _hit_rate() -> float:
    hits = misses = 0
    for runtime in live_runtimes():
        figures = runtime.gauge_figures()
        hits += figures["cache_hits"]
        misses += figures["cache_misses"]
    return hits / (hits + misses) if hits + misses else 0.0


def _memory_peak() -> float:
    return float(max((runtime.gauge_figures()["memory_peak_bytes"] for runtime in live_runtimes()), default=0))


for _state in ("idle", "busy", "suspended"):
    RUNTIME_INSTANCES.labels(_state).set_function(functools.partial(_figure, _state))
RUNTIME_WAITING_EXECUTIONS.set_function(functools.partial(_figure, "waiting"))
WASM_CACHE_HIT_RATE.set_function(_hit_rate)
RUNTIME_MEMORY_PEAK_BYTES.set_function(_memory_peak)
