"""The server process the way a container runs it: readiness, /metrics, the module cache, PostgreSQL connections."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import SLOW_PANEL
from tests.support.servers import Database, Server, base_env, free_port, provision, start_server

pytestmark = pytest.mark.slow


COUNTER = (Path(__file__).resolve().parents[2] / "workspaces" / "fixtures" / "panels" / "counter.nxml").read_text()


class Api:
    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def create(self, panel_id: str, source: str) -> None:
        response = self.client.post("/api/v1/workspaces/ops/panels/", json={"id": panel_id, "source": source})
        assert response.status_code == 201, response.text

    def trigger(self, panel_id: str, tool: str, args: dict[str, object] | None = None) -> httpx.Response:
        return self.client.post(f"/api/v1/workspaces/ops/panels/{panel_id}/tools/{tool}/", json={"args": args or {}})


@pytest.fixture
def served(tmp_path: Path, scratch_db: Database) -> Iterator[tuple[Server, Api]]:
    env = base_env(DATABASE_URL=scratch_db.url, MAX_INSTANCES="1", MIN_INSTANCES="1", TIMEOUT_MS="20000",
                   REDIS_URL="", CACHE_DIR=str(tmp_path / "cache"))
    token = provision(env, "ops", "ops")
    server = start_server(env, tmp_path)
    try:
        yield server, Api(server, token)
    finally:
        server.terminate()


def test_readiness_stays_ready_while_every_sandbox_instance_is_busy(served: tuple[Server, Api]) -> None:
    server, api = served
    api.create("slow", SLOW_PANEL)
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(api.trigger("slow", "spin", {"ms": 4000})))
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runtime = httpx.get(f"{server.url}/health", timeout=5).json()["runtime"]
        if runtime["activeInstances"] == 1 and runtime["availableInstances"] == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the one instance never became busy")
    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    busy = httpx.get(f"{server.url}/health", timeout=5).json()["runtime"]
    worker.join(30)
    assert busy["activeInstances"] == 1, "the probe ran after the handler had finished"
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "runtime": "ok"}}
    assert answers[0].status_code == 200 and answers[0].json()["status"] == "success", answers[0].text


def test_readiness_stays_ready_while_redis_is_down(tmp_path: Path, scratch_db: Database) -> None:
    env = base_env(DATABASE_URL=scratch_db.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                   CACHE_DIR=str(tmp_path / "cache"))
    token = provision(env, "ops", "ops")
    server = start_server(env, tmp_path)
    try:
        ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        summary = httpx.get(f"{server.url}/health", timeout=10)
        assert summary.status_code == 503
        assert summary.json()["checks"]["channelLayer"]["status"] == "fail"
        assert summary.json()["checks"]["database"] == "ok"
        api = Api(server, token)
        assert api.client.get("/api/v1/workspaces/").status_code == 200  # REST still serves
    finally:
        assert server.terminate() == 0


def test_metrics_are_on_the_metrics_port_only(served: tuple[Server, Api]) -> None:
    server, _ = served
    public = httpx.get(f"{server.url}/metrics", timeout=5)
    assert public.status_code == 404 and public.json()["error"]["code"] == "NOT_FOUND"
    scraped = httpx.get(server.metrics_url, timeout=5)
    assert scraped.status_code == 200 and "nexus_runtime_instances" in scraped.text


# ---------------------------------------------------------------- module cache on a shared volume


def guest_module_sources(log: str) -> list[str]:
    sources = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = str(record.get("message", ""))
        if message.startswith("QuickJS guest module ready"):
            sources.append(message.rsplit("(", 1)[-1].rstrip(")"))
    return sources


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["emptyDir-0777", "tmp-1777"])
def test_the_module_cache_works_inside_a_world_writable_directory(tmp_path: Path, mode: int) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chmod(volume, mode)  # what a kubelet emptyDir (root-owned, world-writable) looks like
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", CACHE_DIR=str(volume), LOG_LEVEL="info",
                   LOG_PRETTY="false")
    sources = []
    for start in range(2):
        log_dir = tmp_path / f"start-{start}"
        log_dir.mkdir()
        server = start_server(env, log_dir)
        assert server.terminate() == 0
        sources += guest_module_sources(server.log())
    assert sources == ["compiled", "disk"], sources
    private = volume / "modules"
    assert private.is_dir() and (private.stat().st_mode & 0o777) == 0o700
    assert private.stat().st_uid == os.geteuid()
    checked = provision_free_check(env)
    assert any(line.startswith("ok") and "cache dir" in line for line in checked.splitlines()), checked


def provision_free_check(env: dict[str, str]) -> str:
    from tests.support.servers import manage

    manage("migrate", "--noinput", env=env)
    return manage("nexus_check", "--startup", env=env, check=False).stdout


# ---------------------------------------------------------------- PostgreSQL connections


def connections_of(database_url: str) -> int:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def burst(api: Api, clients: int, seconds: float, database_url: str) -> tuple[list[str], int, int]:
    """``clients`` threads triggering for ``seconds``; the errors seen, the requests made, the most connections."""
    errors: list[str] = []
    done = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=api.server.url, headers=api.client.headers, timeout=30) as http:
            while time.monotonic() < stop:
                panel = f"c{index % 4}"
                response = http.post(f"/api/v1/workspaces/ops/panels/{panel}/tools/increment/", json={"args": {}})
                with lock:
                    done[0] += 1
                    if response.status_code != 200 or response.json().get("status") != "success":
                        errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    most = 0
    while any(thread.is_alive() for thread in threads):
        most = max(most, connections_of(database_url))
        time.sleep(0.2)
    for thread in threads:
        thread.join(60)
    return errors, done[0], most


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="connection count: runs when DATABASE_URL points at PostgreSQL")
def test_bursts_of_concurrent_clients_stay_within_the_connection_pool(tmp_path: Path, scratch_db: Database) -> None:
    pool_size = 6
    env = base_env(DATABASE_URL=scratch_db.url, DB_POOL_MAX_SIZE=str(pool_size), DB_POOL_MIN_SIZE="2",
                   REDIS_URL="", CACHE_DIR=str(tmp_path / "cache"), MAX_PANELS="10")
    token = provision(env, "ops", "ops")
    server = start_server(env, tmp_path)
    try:
        api = Api(server, token)
        for index in range(4):
            api.create(f"c{index}", COUNTER.replace('id="counter"', f'id="c{index}"'))
        first = burst(api, 12, 10, scratch_db.url)
        second = burst(api, 12, 10, scratch_db.url)
        after = connections_of(scratch_db.url)
        print(f"bursts: requests {first[1]}, {second[1]}; most connections {first[2]}, {second[2]}; after {after}")
        assert first[0] == [] and second[0] == [], (first[0][:5], second[0][:5])
        assert first[1] > 100 and second[1] > 100, (first[1], second[1])
        assert first[2] <= pool_size and second[2] <= pool_size, (first[2], second[2])
        assert after <= pool_size
        total = sum(api.client.get(f"/api/v1/workspaces/ops/panels/c{i}/state/").json()["state"]["count"]
                    for i in range(4))
        assert total == first[1] + second[1]
    finally:
        assert server.terminate() == 0
