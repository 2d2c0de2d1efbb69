"""The per-minute counters: one budget shared by processes through Redis; a Redis outage lets work through."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from runtime import metrics
from tests.conftest import using_postgres
from tests.support.servers import redis_server, unique_prefix
from workspaces.services import quotas
from workspaces.services.quotas import (
    EXECUTIONS,
    HTTP_CALLS,
    SANDBOX_MS,
    Charge,
    LocalCounters,
    RedisCounters,
    Verdict,
)

ROOT = Path(__file__).resolve().parents[2]
HOUR_MS = 3_600_000
# Each process pushes more than half of the budget: together they must be refused.
BUDGET = 10
PER_PROCESS = 6

PUSHER = """
import json, os, sys
import django
django.setup()
from workspaces.services.quotas import Charge, RedisCounters
counters = RedisCounters(sys.argv[1], sys.argv[2], window_ms=3_600_000)
answers = [counters.charge("noisy", [Charge("executions", 1, int(sys.argv[3]))]).refused
           for _ in range(int(sys.argv[4]))]
print(json.dumps(answers))
"""


def failures() -> float:
    samples = next(iter(metrics.QUOTA_CHECK_FAILURES_TOTAL.collect())).samples
    return next(sample.value for sample in samples if sample.name.endswith("_total"))


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        assert url, "these tests need redis-server on this machine or REDIS_URL"
        yield url


def test_two_processes_share_one_budget_through_redis(redis_url: str) -> None:
    prefix = unique_prefix()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "nexus.settings", "JWT_SECRET": "x" * 32, "SECRET_KEY": "y"}
    args = [redis_url, prefix, str(BUDGET), str(PER_PROCESS)]
    pushers = [subprocess.Popen([sys.executable, "-c", PUSHER, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    answers = []
    for pusher in pushers:
        out, err = pusher.communicate(timeout=120)
        assert pusher.returncode == 0, err
        answers.extend(json.loads(out.strip().splitlines()[-1]))
    assert answers.count(None) == BUDGET
    assert answers.count(EXECUTIONS) == 2 * PER_PROCESS - BUDGET
    reader = RedisCounters(redis_url, prefix, window_ms=HOUR_MS)
    assert reader.charge("noisy", [Charge(EXECUTIONS, 0, -1)]).used == {EXECUTIONS: BUDGET}
    reader.close()


def test_counters_with_one_prefix_agree_and_other_prefixes_do_not_see_them(redis_url: str) -> None:
    prefix = unique_prefix()
    first, second = (RedisCounters(redis_url, prefix, window_ms=HOUR_MS) for _ in range(2))
    stranger = RedisCounters(redis_url, unique_prefix(), window_ms=HOUR_MS)
    try:
        assert first.charge("w", [Charge(HTTP_CALLS, 3, 4)]).refused is None
        refused = second.charge("w", [Charge(HTTP_CALLS, 2, 4)])
        assert refused.refused == HTTP_CALLS and refused.used == {HTTP_CALLS: 3}, "a refusal charges nothing"
        assert 1 <= refused.retry_after <= HOUR_MS // 1000
        assert second.charge("w", [Charge(HTTP_CALLS, 1, 4)]).used == {HTTP_CALLS: 4}
        assert stranger.charge("w", [Charge(HTTP_CALLS, 4, 4)]).refused is None
    finally:
        for counters in (first, second, stranger):
            counters.close()


@pytest.mark.parametrize("make", [
    lambda url: RedisCounters(url, unique_prefix(), window_ms=HOUR_MS),
    lambda url: LocalCounters(window_ms=HOUR_MS),
], ids=["redis", "memory"])
def test_a_check_charges_all_or_nothing(redis_url: str, make: object) -> None:
    counters = make(redis_url)  # type: ignore[operator]
    admitted = counters.charge("w", [Charge(EXECUTIONS, 1, 5), Charge(SANDBOX_MS, 0, 100)])
    assert admitted.refused is None and admitted.used == {EXECUTIONS: 1, SANDBOX_MS: 0}
    counters.charge("w", [Charge(SANDBOX_MS, 100, -1)])
    refused = counters.charge("w", [Charge(EXECUTIONS, 1, 5), Charge(SANDBOX_MS, 0, 100)])
    assert refused.refused == SANDBOX_MS
    assert refused.used == {EXECUTIONS: 1, SANDBOX_MS: 100}, "the run refused for its time is not counted"


class CountedRedis(RedisCounters):
    """Counters on a Redis that is not there, counting how often they are tried."""

    tries = 0

    def charge(self, workspace: str, charges: Sequence[Charge]) -> Verdict:
        self.tries += 1
        return super().charge(workspace, charges)


def test_an_unreachable_redis_lets_work_through_with_a_warning_and_a_metric(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = CountedRedis("redis://127.0.0.1:1/0", unique_prefix())
    quotas.use_counters(unreachable)
    before = failures()
    try:
        with caplog.at_level(logging.WARNING, logger="workspaces.services.quotas"):
            quotas._last_warning = 0.0
            assert quotas.charge("w", [Charge(EXECUTIONS, 1, 0)]) is None
            assert quotas.charge("w", [Charge(EXECUTIONS, 1, 0)]) is None
    finally:
        quotas.use_counters(None)
    assert unreachable.tries == 1, "after a failure Redis is left alone for a while: no timeout per run"
    assert failures() == before + 2
    assert sum("letting work through" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.skipif(not using_postgres(), reason="the connection pool exists on PostgreSQL: DATABASE_URL=postgres://…")
def test_reading_a_workspace_s_limits_gives_its_connection_back(transactional_db: None) -> None:
    from asgiref.sync import async_to_sync
    from django.db import connection

    connection.ensure_connection()
    pool = connection.pool

    def checked_out() -> int:
        stats = pool.get_stats()
        return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))

    before = checked_out()
    for index in range(20):
        quotas.forget_limits()
        async_to_sync(quotas._alimits_for)(f"ws{index}")
    assert checked_out() == before, "every thread that read limits returned its connection to the pool"
