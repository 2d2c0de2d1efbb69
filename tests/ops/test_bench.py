"""The benchmark harness keeps working: a quick run of every case (figures are not judged here)."""

from __future__ import annotations

import json

import pytest

from tests.support.servers import base_env, manage

CASES = {
    "runtime.execute", "runtime.parallel", "runtime.cold_start", "runtime.instance_memory", "runtime.switch",
    "ws.trigger", "ws.throughput", "ws.throughput_vs_handwritten", "ws.fanout", "rest.trigger", "rest.create_panel", "mcp.call",
    "schedule.lag", "ws.fairness", "ws.waiting", "runtime.suspend_resume",
}


@pytest.mark.slow
def test_quick_bench_runs_every_case() -> None:
    done = manage("nexus_bench", "--quick", "--json", env=base_env(), timeout=600)
    results = json.loads(done.stdout)
    assert set(results) == CASES
    for name, figures in results.items():
        assert "error" not in figures, (name, figures)
        if "skipped" not in figures:
            assert isinstance(figures["value"], int | float) and figures["value"] > 0, (name, figures)
            assert figures["unit"], name
    assert results["ws.trigger"]["baseline"] > 0 and results["ws.trigger"]["ratio"] > 0
    assert results["runtime.execute"]["target"] == 0.15


def test_only_selects_cases_and_rejects_unknown_ones() -> None:
    done = manage("nexus_bench", "--only", "nothing.here", env=base_env(), check=False)
    assert done.returncode != 0 and "matches no case" in done.stderr
