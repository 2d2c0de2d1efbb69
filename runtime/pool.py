"""The pool of guest instances: warm instances, checkout and return, recycling.

Each instance remembers the panel it last served. A checkout for a panel prefers an idle
instance of that panel (its compiled handlers are still there), then a pristine one, then
a new one while the pool is below ``max_instances``; only then does it take another
panel's idle instance, which is replaced by a pristine copy before use, so nothing of one
panel is ever visible to another. Instances that failed, hit a limit, or served many
executions are discarded and the pool is topped up to ``min_instances``.
"""

from __future__ import annotations

import logging
import threading
import time

from .engine import GuestModule
from .errors import RuntimeBusyError, RuntimeClosedError
from .limits import RuntimeConfig
from .sandbox import Sandbox

logger = logging.getLogger(__name__)

# Recycle an instance after this many executions, to bound heap fragmentation.
MAX_EXECUTIONS_PER_INSTANCE = 20_000


class Pool:
    def __init__(self, guest: GuestModule, config: RuntimeConfig) -> None:
        self._guest = guest
        self._config = config
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
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
            self._cond.notify_all()
        for sandbox in idle:
            self._destroy(sandbox)

    # -- checkout ----------------------------------------------------------------

    def acquire(self, panel_id: str, timeout_s: float) -> Sandbox:
        """Check out an instance for ``panel_id``: one of its own, or a pristine one."""
        deadline: float | None = None
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeClosedError("the runtime is closed")
                sandbox, create = self._pick(panel_id)
                if sandbox is not None or create:
                    self._checked_out += 1
                    if create:
                        self._total += 1
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout_s
                if now >= deadline:
                    raise RuntimeBusyError(
                        f"all {self._config.max_instances} sandbox instances are busy "
                        f"(waited {timeout_s * 1000:.0f} ms)"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(deadline - now)
                finally:
                    self._waiting -= 1
        try:
            if sandbox is None:
                sandbox = self._create()
            elif sandbox.panel_id not in (None, panel_id):
                sandbox = self._reset(sandbox)
        except BaseException:
            with self._lock:
                self._checked_out -= 1
                self._total -= 1
                self._wake()
            raise
        sandbox.panel_id = panel_id
        return sandbox

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
                    "waiting": self._waiting}

    # -- internals ---------------------------------------------------------------

    def _wake(self) -> None:
        """Wake one waiting caller; the lock is held."""
        if self._waiting:
            self._cond.notify()

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
