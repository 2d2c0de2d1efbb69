"""`nexus.timer`: a handler waits for a while, or until a moment, without holding a sandbox.

`await $ext.timer.sleep(ms)` and `await $ext.timer.until("2026-12-24T18:00:00Z")` suspend the
handler like any extension call; the host resumes it when the time has come. Both answer the
moment the handler woke up, as an ISO 8601 string in UTC.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from .registry import Extension, ExtensionError

MAX_WAIT = timedelta(days=7)
NAME = "nexus.timer"


class TimerExtension(Extension):
    name = NAME
    methods = frozenset({"sleep", "until"})

    async def call(self, method: str, args: list[Any], panel_config: dict[str, Any]) -> Any:
        await asyncio.sleep(max(0.0, (wake_time(method, args, now()) - now()).total_seconds()))
        return now().isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def wake_time(method: str, args: list[Any], called_at: datetime) -> datetime:
    """When a call made at ``called_at`` is due; ExtensionError for arguments that make no sense."""
    if len(args) != 1:
        raise ExtensionError(f"timer.{method} takes one argument")
    if method == "sleep":
        return called_at + _duration(args[0])
    if method == "until":
        due = _moment(args[0])
        if due - called_at > MAX_WAIT:
            raise ExtensionError("timer.until accepts a moment at most 7 days ahead")
        return due
    raise ExtensionError(f"timer has no method {method!r}")


def as_moment(method: str, args: list[Any], called_at: datetime) -> tuple[str, list[Any]]:
    """The same wait as an ``until`` call, so that it can be performed again later without waiting longer."""
    try:
        due = wake_time(method, args, called_at)
    except ExtensionError:
        return method, args  # performed again, it fails again the same way
    return "until", [due.isoformat().replace("+00:00", "Z")]


def _duration(value: Any) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ExtensionError("timer.sleep takes a number of milliseconds")
    if value < 0 or value > MAX_WAIT.total_seconds() * 1000:
        raise ExtensionError("timer.sleep takes 0 to 604800000 milliseconds (7 days)")
    return timedelta(milliseconds=value)


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ExtensionError("timer.until takes an ISO 8601 date and time, e.g. '2026-12-24T18:00:00Z'")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ExtensionError(f"timer.until: {value[:64]!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ExtensionError("timer.until needs a time zone, e.g. a trailing 'Z' for UTC")
    return moment.astimezone(UTC)
