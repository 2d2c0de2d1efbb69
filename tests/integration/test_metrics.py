"""/metrics and /health after real activity, parsed the way Prometheus would."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import SLOW_PANEL, Live, example, receive_until, start_live
from tests.support.servers import scratch_database

pytestmark = pytest.mark.slow

FAMILIES = {
    "nexus_handler_executions": "counter",
    "nexus_handler_duration_seconds": "histogram",
    "nexus_runtime_instances": "gauge",
    "nexus_wasm_cache_hit_rate": "gauge",
    "nexus_runtime_memory_peak_bytes": "gauge",
    "nexus_host_calls": "counter",
    "nexus_errors": "counter",
    "nexus_panels_active": "gauge",
    "nexus_ws_connections": "gauge",
    "nexus_ext_calls": "counter",
    "django_http_requests_total_by_method": "counter",
    "django_db_execute": "counter",
}


def scrape(live: Live) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = live.metrics()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def families(live: Live) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(live.metrics())}


def total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return sum(value for key, value in samples.get(name, {}).items() if set(labels.items()) <= set(key))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("metrics")
    with scratch_database(tmp) as database:
        nexus = start_live(tmp, database.url)
        try:
            nexus.create("counter", example("counter"))
            nexus.create("slow", SLOW_PANEL)
            yield nexus
        finally:
            nexus.server.terminate()


async def test_every_family_is_exposed_with_its_type(live: Live) -> None:
    found = families(live)
    for name, kind in FAMILIES.items():
        assert found.get(name) == kind, (name, found.get(name))


async def test_counts_move_with_real_activity(live: Live) -> None:
    before = scrape(live)
    socket = await live.connect("counter")
    assert total(scrape(live), "nexus_ws_connections") == total(before, "nexus_ws_connections") + 1
    for index in range(3):
        await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "requestId": index}))
        await receive_until(socket, "RESULT")
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "nope", "requestId": "x"}))
    await receive_until(socket, "ERROR")
    failing = await live.connect("slow")
    await failing.send(json.dumps({"type": "TRIGGER", "tool": "fail", "requestId": "f"}))
    await receive_until(failing, "RESULT")
    after = scrape(live)
    assert total(after, "nexus_handler_executions_total", status="success") >= (
        total(before, "nexus_handler_executions_total", status="success") + 3)
    assert total(after, "nexus_handler_executions_total", status="error", code="EXECUTION_ERROR") >= 1
    assert total(after, "nexus_handler_duration_seconds_count") > total(before, "nexus_handler_duration_seconds_count")
    assert total(after, "nexus_host_calls_total", function="emit") >= total(before, "nexus_host_calls_total",
                                                                          function="emit") + 3
    assert total(after, "nexus_errors_total", code="TOOL_NOT_FOUND") >= 1
    assert total(after, "nexus_panels_active") == 2
    assert 0 < total(after, "nexus_wasm_cache_hit_rate") <= 1
    assert total(after, "nexus_runtime_memory_peak_bytes") > 0
    await socket.close()
    await failing.close()


def test_no_metric_carries_a_panel_id(live: Live) -> None:
    text = live.metrics()
    assert "counter" not in {value for fam in text_string_to_metric_families(text)
                             for s in fam.samples if s.name.startswith("nexus_") for value in s.labels.values()}


def test_health_reflects_known_activity(live: Live) -> None:
    body = live.api("GET", "/health").json()
    assert body["status"] == "healthy"
    assert body["activePanels"] == 2 and body["maxPanels"] == 50
    runtime = body["runtime"]
    assert runtime["executions"] >= 4
    assert runtime["activeInstances"] == 0
    assert 1 <= runtime["availableInstances"] <= runtime["maxInstances"]
    assert 0 <= runtime["cacheHitRate"] <= 1
    assert body["uptime"] > 0 and body["memory"]["rssBytes"] > 10_000_000
    ready = live.api("GET", "/health/ready").json()
    assert ready["checks"] == {"database": "ok", "runtime": "ok"}
