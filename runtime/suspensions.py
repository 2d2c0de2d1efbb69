"""Suspended executions waiting for their extension call's outcome, and their deadlines.

A suspended execution holds no instance: its guest state is lodged in the instance it ran
in until that instance is needed, then kept as a snapshot (see hibernation.py). Whoever
takes a suspension out of the registry owns it. One whose deadline passes (the runtime's
``suspension_ttl_s``, or the deadline set for it) is dropped by the reaper thread and its
id remembered for a while, so that a late resume learns it timed out.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .execution import ExecutionContext
from .hibernation import Lodging

logger = logging.getLogger("nexus.runtime")

# Ids of expired suspensions remembered, oldest forgotten first.
_EXPIRED_REMEMBERED = 10_000


@dataclass(eq=False)
class Suspension:
    context: ExecutionContext
    code: str
    call_id: int
    # The pending extension call: [alias, method, args].
    call: list[Any]
    timeout_ms: int
    used_ms: float
    expires_at: float  # time.monotonic()
    lodging: Lodging


class Suspensions:
    """Thread-safe registry of suspensions by id, with a reaper thread for the expired ones."""

    def __init__(self, drop: Callable[[Suspension], None]) -> None:
        self._drop = drop
        self._records: dict[str, Suspension] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._cond = threading.Condition(threading.Lock())
        self._reaper: threading.Thread | None = None
        self._closed = False

    def add(self, record: Suspension, limit: int | None = None) -> str | None:
        """Register ``record`` under a new id; None when ``limit`` suspensions wait already."""
        suspension_id = secrets.token_urlsafe(18)
        with self._cond:
            if limit is not None and len(self._records) >= limit:
                return None
            self._records[suspension_id] = record
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_loop, name="nexus-suspensions", daemon=True)
                self._reaper.start()
            self._cond.notify()
        return suspension_id

    def put_back(self, suspension_id: str, record: Suspension) -> None:
        """Return a suspension taken by a resume that could not run."""
        with self._cond:
            self._records[suspension_id] = record
            self._cond.notify()

    def take(self, suspension_id: object) -> Suspension | None:
        """Remove and return a live suspension; None when unknown, taken already or expired."""
        if not isinstance(suspension_id, str):
            return None
        with self._cond:
            record = self._records.pop(suspension_id, None)
            if record is not None and record.expires_at <= time.monotonic():
                self._remember_expired(suspension_id)
                expired = record
                record = None
            else:
                expired = None
        if expired is not None:
            self._drop(expired)
        return record

    def peek(self, suspension_id: object) -> Suspension | None:
        if not isinstance(suspension_id, str):
            return None
        with self._cond:
            return self._records.get(suspension_id)

    def expired(self, suspension_id: object) -> bool:
        """Whether ``suspension_id`` was dropped because its deadline passed."""
        with self._cond:
            return isinstance(suspension_id, str) and suspension_id in self._expired

    def set_deadline(self, suspension_id: object, seconds: float) -> bool:
        """Let the suspension wait ``seconds`` from now; False when there is no such suspension."""
        if not isinstance(suspension_id, str):
            return False
        with self._cond:
            record = self._records.get(suspension_id)
            if record is None:
                return False
            record.expires_at = time.monotonic() + seconds
            self._cond.notify()
        return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._records)

    def close(self) -> list[Suspension]:
        """Stop the reaper and hand back every suspension still waiting."""
        with self._cond:
            self._closed = True
            records, self._records = list(self._records.values()), {}
            self._cond.notify_all()
        return records

    def _remember_expired(self, suspension_id: str) -> None:
        self._expired[suspension_id] = None
        while len(self._expired) > _EXPIRED_REMEMBERED:
            self._expired.popitem(last=False)

    def _reap_loop(self) -> None:
        while True:
            expired: list[Suspension] = []
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                for key, record in list(self._records.items()):
                    if record.expires_at <= now:
                        expired.append(self._records.pop(key))
                        self._remember_expired(key)
                if not expired:
                    upcoming = min((r.expires_at for r in self._records.values()), default=now + 60)
                    self._cond.wait(max(upcoming - now, 0.01))
            for record in expired:
                logger.info("a suspended execution of %s passed its deadline", record.context.panel_id)
                self._drop(record)
