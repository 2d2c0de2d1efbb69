"""schedule.lag: how late scheduled ticks start on one server with 100 panels scheduled every 10 s.

The figure is the 99th percentile of nexus_schedule_lag_seconds as the server's histogram
buckets give it (an upper bound: the smallest bucket holding 99 % of the ticks).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from workspaces.benchmarks.live import COUNTER_SOURCE, deployment
from workspaces.benchmarks.report import case

SCHEDULED_SOURCE = COUNTER_SOURCE.replace(
    "  </Logic>", '    <Schedule tool="increment" every="10s" />\n  </Logic>')
_BUCKET = re.compile(r'^nexus_schedule_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.MULTILINE)
_COUNT = re.compile(r"^nexus_schedule_lag_seconds_count ([0-9.e+]+)$", re.MULTILINE)
_SUM = re.compile(r"^nexus_schedule_lag_seconds_sum ([0-9.e+]+)$", re.MULTILINE)


def bucket_percentile(metrics: str, fraction: float) -> tuple[float, int]:
    """(upper bound of the bucket holding ``fraction`` of the observations, their count)."""
    buckets = [(float(bound), float(count)) for bound, count in _BUCKET.findall(metrics)]
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= fraction * total:
            return bound, int(total)
    return float("nan"), int(total)


def schedule_lag(quick: bool) -> dict[str, Any]:
    panels, run_s = (20, 15.0) if quick else (100, 25.0)
    with deployment() as dep:
        server = dep.servers[0]
        for index in range(panels):
            response = httpx.post(f"{server.url}/api/v1/workspaces/{dep.workspace}/panels/",
                                  json={"id": f"tick{index}", "source": SCHEDULED_SOURCE},
                                  headers=dep.headers, timeout=30)
            response.raise_for_status()
        time.sleep(run_s)
        metrics = httpx.get(server.metrics_url, timeout=30).text
    p99, ticks = bucket_percentile(metrics, 0.99)
    count, total = _COUNT.search(metrics), _SUM.search(metrics)
    observed = float(count.group(1)) if count else 0.0
    mean_ms = float(total.group(1)) / observed * 1000 if total and observed else None
    return case(p99, "s", target=1.0, target_is_ratio=False, panels=panels, ticks=ticks,
                mean_ms=round(mean_ms, 2) if mean_ms is not None else None, run_s=run_s)
