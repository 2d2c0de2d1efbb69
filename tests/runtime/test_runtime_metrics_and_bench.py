"""The nexus_* metrics fed by the runtime, and the benchmark functions used by nexus_bench."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from runtime import bench, metrics

from .conftest import context

# Read the runtime's metrics only: the default registry of this test process may also hold
# collectors of the web layer that need a database.
COLLECTORS = [
    metrics.HANDLER_EXECUTIONS_TOTAL,
    metrics.HANDLER_DURATION_SECONDS,
    metrics.RUNTIME_INSTANCES,
    metrics.RUNTIME_WAITING_EXECUTIONS,
    metrics.WASM_CACHE_HIT_RATE,
    metrics.RUNTIME_MEMORY_PEAK_BYTES,
    metrics.HOST_CALLS_TOTAL,
    metrics.ERRORS_TOTAL,
    metrics.WS_CONNECTIONS,
    metrics.EXT_CALLS_TOTAL,
]
METRIC_NAMES = [
    "nexus_handler_executions_total",
    "nexus_handler_duration_seconds",
    "nexus_runtime_instances",
    "nexus_runtime_waiting_executions",
    "nexus_wasm_cache_hit_rate",
    "nexus_runtime_memory_peak_bytes",
    "nexus_host_calls_total",
    "nexus_errors_total",
    "nexus_ws_connections",
    "nexus_ext_calls_total",
]


class _Only:
    """A registry view holding just the given collectors (they stay in the default registry)."""

    def __init__(self, collectors: list[Any]) -> None:
        self._collectors = collectors

    def collect(self) -> Any:
        metrics.BUFFERED_UPDATES.collect()
        for collector in self._collectors:
            yield from collector.collect()


def exposition() -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Only(COLLECTORS))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def sample(name: str, **labels: str) -> float:
    metrics.BUFFERED_UPDATES.collect()
    for collector in COLLECTORS:
        for family in collector.collect():
            for item in family.samples:
                if item.name == name and item.labels == labels:
                    return float(item.value)
    return 0.0


def test_every_metric_is_defined() -> None:
    # nexus_panels_active is computed by the web layer from the database; its definition is checked.
    assert metrics.PANELS_ACTIVE._name == "nexus_panels_active"
    text = exposition()
    for name in METRIC_NAMES:
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name


def test_runtime_feeds_its_metrics(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=2, timeout_ms=100)
    before = {
        "ok": sample("nexus_handler_executions_total", status="success", code=""),
        "timeout": sample("nexus_handler_executions_total", status="error", code="TIMEOUT"),
        "errors": sample("nexus_errors_total", code="TIMEOUT"),
        "emit": sample("nexus_host_calls_total", function="emit"),
        "log": sample("nexus_host_calls_total", function="log"),
        "durations": sample("nexus_handler_duration_seconds_count"),
    }
    for _ in range(3):
        rt.execute("$emit('e', 1); $log('x'); return 1;", context(panel_id="metrics"))
    rt.execute("while (true) {}", context(panel_id="metrics"))
    assert sample("nexus_handler_executions_total", status="success", code="") == before["ok"] + 3
    assert sample("nexus_handler_executions_total", status="error", code="TIMEOUT") == before["timeout"] + 1
    assert sample("nexus_errors_total", code="TIMEOUT") == before["errors"] + 1
    assert sample("nexus_host_calls_total", function="emit") == before["emit"] + 3
    assert sample("nexus_host_calls_total", function="log") == before["log"] + 3
    assert sample("nexus_handler_duration_seconds_count") == before["durations"] + 4
    assert sample("nexus_runtime_instances", state="idle") >= 1
    assert 0 < sample("nexus_wasm_cache_hit_rate") <= 1
    assert sample("nexus_runtime_memory_peak_bytes") > 0


def test_executions_waiting_for_an_instance_are_counted(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1, timeout_ms=1000, acquire_timeout_ms=30000)
    assert sample("nexus_runtime_waiting_executions") == 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as workers:
        # The only instance spins until its time limit; the second execution waits for it.
        spinning = workers.submit(rt.execute, "while (true) {}", context(panel_id="spin"))
        deadline = time.monotonic() + 20
        while sample("nexus_runtime_instances", state="busy") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = workers.submit(rt.execute, "return 1;", context(panel_id="queued"))
        seen = 0.0
        while not queued.done() and time.monotonic() < deadline:
            seen = max(seen, sample("nexus_runtime_waiting_executions"))
            time.sleep(0.005)
        assert spinning.result().error is not None
        assert queued.result().error is None
    assert seen == 1
    assert sample("nexus_runtime_waiting_executions") == 0


def test_no_panel_label(runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.execute("return 1;", context(panel_id="label-check"))
    text = exposition()
    assert "label-check" not in text and "panel=" not in text


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(bench.ALL_BENCHMARKS))
def test_benchmarks_report(name: str) -> None:
    report = bench.ALL_BENCHMARKS[name](True)
    assert {"value", "unit"} <= set(report)
    assert isinstance(report["value"], int | float) and report["value"] > 0
    if "target" in report:
        assert isinstance(report["ok"], bool)
