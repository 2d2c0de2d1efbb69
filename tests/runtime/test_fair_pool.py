"""The pool's waiting callers: served round-robin across tenants, in order within one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from runtime import Runtime, RuntimeBusyError
from runtime.pool import Pool
from runtime.sandbox import Sandbox

from .conftest import context

WAIT_LIMIT_S = 20.0


def _wait_for_waiting(pool: Pool, count: int) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while pool.counts()["waiting"] != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} waiting callers, saw {pool.counts()['waiting']}")
        time.sleep(0.002)


class Waiters:
    """Callers queued one at a time (so their order is known); each records its turn and returns at once."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.served: list[str] = []
        self.failures: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def queue(self, tenant: str, label: str) -> None:
        before = self.pool.counts()["waiting"]
        thread = threading.Thread(target=self._take_turn, args=(tenant, label))
        thread.start()
        self.threads.append(thread)
        _wait_for_waiting(self.pool, before + 1)

    def _take_turn(self, tenant: str, label: str) -> None:
        try:
            sandbox = self.pool.acquire("shared-panel", WAIT_LIMIT_S, tenant=tenant)
        except BaseException as exc:  # reported by the test
            self.failures.append(exc)
            return
        self.served.append(label)
        self.pool.release(sandbox)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT_LIMIT_S)
        assert not any(thread.is_alive() for thread in self.threads)
        assert self.failures == []


@pytest.fixture
def full_pool(make_runtime: Callable[..., Runtime]) -> tuple[Pool, Sandbox]:
    """A pool of one instance, checked out: every further caller waits."""
    rt = make_runtime(min_instances=1, max_instances=1, acquire_timeout_ms=5000)
    pool = rt._pool
    held = pool.acquire("holder", 5)
    return pool, held


def test_one_waiting_caller_alternates_with_forty_of_another_workspace(full_pool) -> None:  # type: ignore[no-untyped-def]
    pool, held = full_pool
    waiters = Waiters(pool)
    for index in range(40):
        waiters.queue("noisy", f"noisy-{index}")
    waiters.queue("quiet", "quiet-0")
    assert pool.counts()["waiting_tenants"] == 2
    pool.release(held)
    waiters.join()
    # The quiet workspace's only caller is served second, not after the forty that queued before it.
    assert waiters.served[:2] == ["noisy-0", "quiet-0"]
    assert waiters.served[2:] == [f"noisy-{index}" for index in range(1, 40)]
    assert pool.counts()["waiting"] == 0


def test_workspaces_take_turns_and_keep_their_own_order(full_pool) -> None:  # type: ignore[no-untyped-def]
    pool, held = full_pool
    waiters = Waiters(pool)
    for index in range(5):
        waiters.queue("a", f"a{index}")
    for index in range(3):
        waiters.queue("b", f"b{index}")
    waiters.queue("c", "c0")
    pool.release(held)
    waiters.join()
    assert waiters.served == ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3", "a4"]


def test_a_queued_caller_still_times_out_busy_and_leaves_the_queue(full_pool) -> None:  # type: ignore[no-untyped-def]
    pool, held = full_pool
    with pytest.raises(RuntimeBusyError):
        pool.acquire("other", 0.05, tenant="late")
    assert pool.counts()["waiting"] == 0
    assert pool.counts()["waiting_tenants"] == 0
    pool.release(held)
    again = pool.acquire("other", 1, tenant="late")
    pool.release(again)


def test_a_timed_out_head_hands_its_turn_on(full_pool) -> None:  # type: ignore[no-untyped-def]
    pool, held = full_pool
    gave_up: list[BaseException] = []

    def impatient() -> None:
        try:
            pool.acquire("p", 0.2, tenant="impatient")
        except RuntimeBusyError as exc:
            gave_up.append(exc)

    thread = threading.Thread(target=impatient)
    thread.start()
    _wait_for_waiting(pool, 1)
    waiters = Waiters(pool)
    waiters.queue("patient", "patient-0")
    thread.join(WAIT_LIMIT_S)
    assert len(gave_up) == 1
    _wait_for_waiting(pool, 1)
    pool.release(held)
    waiters.join()
    assert waiters.served == ["patient-0"]


def test_runtime_passes_the_context_tenant_and_reports_waiting_callers(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1, acquire_timeout_ms=10_000)
    held = rt._pool.acquire("holder", 5)
    results: list[object] = []
    ctx = context(state={"n": 1}, args={"by": 1}, panel_id="w1/p")
    ctx.tenant = "w1"
    thread = threading.Thread(target=lambda: results.append(rt.execute("return $state.n;", ctx)))
    thread.start()
    _wait_for_waiting(rt._pool, 1)
    stats = rt.stats()
    assert stats["waiting_callers"] == 1
    assert stats["waiting_tenants"] == 1
    rt._pool.release(held)
    thread.join(WAIT_LIMIT_S)
    assert [result.return_value for result in results] == [1]  # type: ignore[attr-defined]
    assert rt.stats()["waiting_callers"] == 0
