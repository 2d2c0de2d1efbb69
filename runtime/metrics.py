"""Every nexus_* Prometheus metric of the product, in the default registry (SPEC §10).

The runtime feeds the handler, instance, cache, memory, host-call and error metrics
itself; the web layer updates ``PANELS_ACTIVE`` and ``WS_CONNECTIONS``, the extension
registry ``EXT_CALLS_TOTAL``. No label carries a panel id or any other unbounded value.

Importing this module twice, or after another module registered one of these names,
returns the collectors already registered instead of failing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

_C = TypeVar("_C", Counter, Gauge, Histogram)


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
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RUNTIME_INSTANCES = _registered(
    Gauge,
    "nexus_runtime_instances",
    "Sandbox instances by state: idle, busy (running or suspended) and suspended.",
    ("state",),
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

# Label values of nexus_host_calls_total{function}; anything else is counted as "other".
HOST_FUNCTIONS = frozenset({"emit", "log", "ext", "view.setFilter", "view.scrollTo", "view.focus"})

__all__ = [
    "ERRORS_TOTAL",
    "EXT_CALLS_TOTAL",
    "HANDLER_DURATION_SECONDS",
    "HANDLER_EXECUTIONS_TOTAL",
    "HOST_CALLS_TOTAL",
    "HOST_FUNCTIONS",
    "PANELS_ACTIVE",
    "RUNTIME_INSTANCES",
    "RUNTIME_MEMORY_PEAK_BYTES",
    "WASM_CACHE_HIT_RATE",
    "WS_CONNECTIONS",
]
