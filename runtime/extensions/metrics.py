"""Prometheus counter for extension calls.

Kept in one spot so that it can move into `runtime.metrics` with a one-line change.
"""

from __future__ import annotations

from prometheus_client import Counter

EXT_CALLS_TOTAL = Counter(
    "nexus_ext_calls_total",
    "Extension calls made by handlers, by extension, method and outcome.",
    ["extension", "method", "status"],
)
