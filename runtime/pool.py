"""The pool of guest instances: warm instances, checkout and return, recycling.

Each instance remembers the panel it last served. A checkout for a panel prefers an idle
instance of that panel (its compiled handlers are still there), then a pristine one, then
a new one while the pool is below ``max_instances``; only then does it take another
panel's idle instance, which is replaced by a pristine copy before use, so nothing of one
panel is ever visible to another. Instances that failed, hit a limit, or served many
executions are discarded and the pool is topped up to ``min_instances``.

When every instance is busy, callers wait in one queue per tenant (a workspace, say): the
next free instance goes to the oldest caller of the tenant whose turn it is, and tenants
take turns round-robin, so a tenant with many waiting callers cannot hold back one with a
few. A caller that waits longer than its timeout gets ``RuntimeBusyError``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .engine import GuestModule
from .errors import RuntimeBusyError, RuntimeClosedError
from .limits import RuntimeConfig
from .sandbox import Sandbox

logger = logging.getLogger(__name__)

# Recycle an instance after this many executions, to bound heap fragmentation.
MAX_EXECUTIONS_PER_INSTANCE = 20_000


@dataclass(eq=False)
class _Waiter:
    """One caller waiting for an instance; woken through its own condition when it is next."""

    tenant: str
    wakeup: threading.Condition
    served: bool = field(default=False)


class _FairQueue:
    """Waiting callers: FIFO within a tenant, tenants served round-robin. Guarded by the pool lock."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, deque[_Waiter]] = {}
        self._turns: deque[str] = deque()  # tenants with waiting callers, next turn first
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def push(self, waiter: _Waiter) -> None:
        queue = self._by_tenant.get(waiter.tenant)
        if queue is None:
            queue = self._by_tenant[waiter.tenant] = deque()
            self._turns.append(waiter.tenant)
        queue.append(waiter)
        self.size += 1

    def head(self) -> _Waiter | None:
        """The caller served next: the oldest one of the tenant whose turn it is."""
        return self._by_tenant[self._turns[0]][0] if self._turns else None

    def pop_head(self) -> None:
        """The head was served; its tenant goes to the back of the turns."""
        tenant = self._turns.popleft()
        queue = self._by_tenant[tenant]
        queue.popleft()
        self.size -= 1
        if queue:
            self._turns.append(tenant)
        else:
            del self._by_tenant[tenant]

    def remove(self, waiter: _Waiter) -> None:
        """A caller gave up (timeout, closed pool); its tenant keeps its place in the turns."""
        queue = self._by_tenant.get(waiter.tenant)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self.size -= 1
        if not queue:
            del self._by_tenant[waiter.tenant]
            self._turns.remove(waiter.tenant)

    def tenants(self) -> int:
        return len(self._turns)

    def all(self) -> list[_Waiter]:
        return [waiter for queue in self._by_tenant.values() for waiter in queue]


class Pool:
    def __init__(self, guest: GuestModule, config: RuntimeConfig) -> None:
        self._guest = guest
        self._config = config
        self._lock = threading.Lock()
        self._waiters = _FairQueue()
        self._idle: list[Sandbox] = []
        self._total = 0  # idle + checked out + being created
        self._checked_out = 0
        self._closed = False
        self.created = 0
        self.discarded = 0
        self.resets = 0
        self.peak_memory = 0
        self.memory_bytes: dict[int, int] = {}
        # Linear memory never shrinks: an instance that grew this much is replaced when it
        # comes back, so idle instances keep little resident memory.
        self._recycle_above = max(8 * 1024 * 1024, config.memory_limit_bytes // 2)

    # -- lifecycle ---------------------------------------------------------------

    def warm(self) -> None:
        """Create instances until ``min_instances`` exist."""
        while True:
            with self._lock:
                if self._closed or self._total >= self._config.min_instances:
                    return
                self._total += 1
            try:
                sandbox = self._create()
            except BaseException:
                with self._lock:
                    self._total -= 1
                    self._wake()
                raise
            with self._lock:
                self._idle.append(sandbox)
                self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._total -= len(idle)
            for waiter in self._waiters.all():
                waiter.wakeup.notify()
        for sandbox in idle:
            self._destroy(sandbox)

    # -- checkout ----------------------------------------------------------------

    def acquire(
        self, panel_id: str, timeout_s: float, *, tenant: str | None = None, overwrites: bool = False
    ) -> Sandbox:
        """Check out an instance for ``panel_id``: one of its own, or a pristine one.

        ``tenant`` names whose turn a waiting caller takes (default: the panel itself); while
        any caller waits, a new caller queues behind the others instead of overtaking them.
        ``overwrites``: the caller replaces the whole guest state (a resume restoring its
        snapshot), so another panel's instance is handed over without a reset.
        """
        with self._lock:
            if self._closed:
                raise RuntimeClosedError("the runtime is closed")
            sandbox, create = (None, False) if self._waiters else self._pick(panel_id)
            if sandbox is None and not create:
                sandbox, create = self._wait_turn(panel_id, panel_id if tenant is None else tenant, timeout_s)
            self._checked_out += 1
            if create:
                self._total += 1
        try:
            if sandbox is None:
                sandbox = self._create()
            elif sandbox.panel_id not in (None, panel_id) and not overwrites:
                sandbox = self._reset(sandbox)
        except BaseException:
            with self._lock:
                self._checked_out -= 1
                self._total -= 1
                self._wake()
            raise
        sandbox.panel_id = panel_id
        return sandbox

    def _wait_turn(self, panel_id: str, tenant: str, timeout_s: float) -> tuple[Sandbox | None, bool]:
        """Queue until this caller is the head and an instance is free; the lock is held."""
        waiter = _Waiter(tenant, threading.Condition(self._lock))
        self._waiters.push(waiter)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self._closed:
                    raise RuntimeClosedError("the runtime is closed")
                if self._waiters.head() is waiter:
                    sandbox, create = self._pick(panel_id)
                    if sandbox is not None or create:
                        self._waiters.pop_head()
                        waiter.served = True
                        self._wake()  # the next head may find an instance too
                        return sandbox, create
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeBusyError(
                        f"all {self._config.max_instances} sandbox instances are busy "
                        f"(waited {timeout_s * 1000:.0f} ms)"
                    )
                waiter.wakeup.wait(remaining)
        finally:
            if not waiter.served:
                was_head = self._waiters.head() is waiter
                self._waiters.remove(waiter)
                if was_head:
                    self._wake()

    def _pick(self, panel_id: str) -> tuple[Sandbox | None, bool]:
        idle = self._idle
        if idle and idle[-1].panel_id == panel_id:
            return idle.pop(), False
        for index in range(len(idle) - 1, -1, -1):
            if idle[index].panel_id == panel_id:
                return idle.pop(index), False
        for index in range(len(idle) - 1, -1, -1):
            if idle[index].panel_id is None:
                return idle.pop(index), False
        if self._total < self._config.max_instances:
            return None, True
        if idle:
            # The instance idle for the longest time, serving another panel.
            return idle.pop(0), False
        return None, False

    def release(self, sandbox: Sandbox, memory_size: int | None = None) -> None:
        """Return an instance; a dirty or worn-out one is discarded and replaced."""
        size = sandbox.memory_size() if memory_size is None else memory_size
        self.memory_bytes[id(sandbox)] = size
        if size > self.peak_memory:
            self.peak_memory = size
        sandbox.executions += 1
        if sandbox.dirty or sandbox.executions >= MAX_EXECUTIONS_PER_INSTANCE or size > self._recycle_above:
            self.discard(sandbox)
            return
        with self._lock:
            self._checked_out -= 1
            if self._closed:
                self._total -= 1
                closed = True
            else:
                self._idle.append(sandbox)
                closed = False
            self._wake()
        if closed:
            self._destroy(sandbox)

    def discard(self, sandbox: Sandbox) -> None:
        """Drop a checked-out instance for good and top the pool up again."""
        with self._lock:
            self._checked_out -= 1
            self._total -= 1
            self._wake()
        self._destroy(sandbox)
        self.discarded += 1
        try:
            self.warm()
        except Exception:  # a failed top-up is retried by the next checkout
            logger.exception("could not replace a discarded sandbox instance")

    # -- figures -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"total": self._total, "idle": len(self._idle), "checked_out": self._checked_out,
                    "waiting": self._waiters.size, "waiting_tenants": self._waiters.tenants()}

    # -- internals ---------------------------------------------------------------

    def _wake(self) -> None:
        """Wake the caller whose turn is next; the lock is held."""
        head = self._waiters.head()
        if head is not None:
            head.wakeup.notify()

    def _create(self) -> Sandbox:
        sandbox = Sandbox(self._guest, self._config.memory_limit_bytes)
        self.created += 1
        self.memory_bytes[id(sandbox)] = size = sandbox.memory_size()
        self.peak_memory = max(self.peak_memory, size)
        return sandbox

    def _reset(self, sandbox: Sandbox) -> Sandbox:
        self._destroy(sandbox)
        self.resets += 1
        return self._create()

    def _destroy(self, sandbox: Sandbox) -> None:
        self.memory_bytes.pop(id(sandbox), None)
        sandbox.close()
