"""Health endpoints, in process and against a real server whose database is gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from django.test import Client

from tests.support.servers import base_env, start_server


@pytest.mark.django_db
def test_health_reports_the_documented_fields() -> None:
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert {"version", "uptime", "activePanels", "maxPanels", "runtime"} <= set(body)
    assert {"activeInstances", "availableInstances", "cacheHitRate", "waitingCallers"} <= set(body["runtime"])
    assert body["runtime"]["waitingCallers"] == 0
    assert body["maxPanels"] == 10


@pytest.mark.django_db
def test_live_and_ready() -> None:
    client = Client()
    assert client.get("/health/live").json()["status"] == "alive"
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "runtime": "ok"}  # Redis is not a readiness question


@pytest.mark.slow
def test_ready_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    env = base_env(DATABASE_URL="postgres://nexus@127.0.0.1:1/nowhere")
    server = start_server(env, tmp_path)
    try:
        ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["checks"]["database"]["status"] == "fail"
        assert set(ready.json()["checks"]) == {"database", "runtime"}
        assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 503
    finally:
        assert server.terminate() == 0
