"""Suspended executions waiting for their extension call's outcome, and their expiry.

A suspended execution keeps its instance checked out. Whoever takes a suspension out of
the registry owns that instance; one that is never resumed expires after the runtime's
``suspension_ttl_s`` and its instance is discarded without running anything more in it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .execution import ExecutionContext
from .sandbox import Sandbox

logger = logging.getLogger("nexus.runtime")


@dataclass
class Suspension:
    sandbox: Sandbox
    context: ExecutionContext
    code: str
    call_id: int
    timeout_ms: int
    used_ms: float
    expires_at: float


class Suspensions:
    """Thread-safe registry of suspensions by id, with a reaper thread for the expired ones."""

    def __init__(self, discard: Callable[[Sandbox], None]) -> None:
        self._discard = discard
        self._records: dict[str, Suspension] = {}
        self._cond = threading.Condition(threading.Lock())
        self._reaper: threading.Thread | None = None
        self._closed = False

    def add(self, record: Suspension) -> str:
        suspension_id = secrets.token_urlsafe(18)
        with self._cond:
            self._records[suspension_id] = record
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_loop, name="nexus-suspensions", daemon=True)
                self._reaper.start()
            self._cond.notify()
        return suspension_id

    def take(self, suspension_id: object) -> Suspension | None:
        """Remove and return a live suspension; None when unknown, taken already or expired."""
        if not isinstance(suspension_id, str):
            return None
        with self._cond:
            record = self._records.pop(suspension_id, None)
        if record is not None and record.expires_at <= time.monotonic():
            self._discard(record.sandbox)
            return None
        return record

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
                if not expired:
                    upcoming = min((r.expires_at for r in self._records.values()), default=now + 60)
                    self._cond.wait(max(upcoming - now, 0.01))
            for record in expired:
                logger.info("a suspended execution expired; its instance is freed")
                self._discard(record.sandbox)
