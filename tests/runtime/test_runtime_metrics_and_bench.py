"""The nexus_* metrics fed by the runtime, and the benchmark functions used by nexus_bench."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest

from runtime import bench, metrics

from .conftest import context

METRIC_NAMES = [
    "nexus_handler_executions_total",
    "nexus_handler_duration_seconds",
    "nexus_runtime_instances",
    "nexus_wasm_cache_hit_rate",
    "nexus_runtime_memory_peak_bytes",
    "nexus_host_calls_total",
    "nexus_errors_total",
    "nexus_panels_active",
    "nexus_ws_connections",
    "nexus_ext_calls_total",
]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_metric_is_defined() -> None:
    exposition = generate_latest(REGISTRY).decode()
    for name in METRIC_NAMES:
        assert f"# TYPE {name}" in exposition or f"# TYPE {name.removesuffix('_total')}" in exposition, name
    assert metrics.WS_CONNECTIONS is not None and metrics.PANELS_ACTIVE is not None


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


def test_no_panel_label() -> None:
    exposition = generate_latest(REGISTRY).decode()
    assert "panel=" not in exposition and "panel_id=" not in exposition


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(bench.ALL_BENCHMARKS))
def test_benchmarks_report(name: str) -> None:
    report = bench.ALL_BENCHMARKS[name](True)
    assert {"value", "unit"} <= set(report)
    assert isinstance(report["value"], int | float) and report["value"] > 0
    if "target" in report:
        assert isinstance(report["ok"], bool)
