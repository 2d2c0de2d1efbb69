"""nexus.timer: arguments checked and the wait honoured."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.extensions.registry import ExtensionError, ExtensionRegistry
from runtime.extensions.timer import TimerExtension, wake_time

CALLED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

def test_sleep_is_due_after_its_milliseconds() -> None:
    assert wake_time("sleep", [1500], CALLED) == CALLED + timedelta(milliseconds=1500)
    assert wake_time("sleep", [0], CALLED) == CALLED


def test_until_is_due_at_its_moment_in_any_zone() -> None:
    assert wake_time("until", ["2026-12-01T13:30:00+01:00"], CALLED) == CALLED + timedelta(minutes=30)
    assert wake_time("until", ["2026-12-01T12:30:00Z"], CALLED) == CALLED + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("method", "args", "says"),
    [
        ("sleep", [-1], "0 to 604800000"),
        ("sleep", [8 * 24 * 3600 * 1000], "7 days"),
        ("sleep", ["10"], "number of milliseconds"),
        ("sleep", [True], "number of milliseconds"),
        ("sleep", [], "one argument"),
        ("until", ["tomorrow"], "not an ISO 8601"),
        ("until", ["2026-12-01T13:00:00"], "time zone"),
        ("until", ["2026-12-09T12:00:01Z"], "at most 7 days"),
        ("until", [42], "ISO 8601"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(method: str, args: list[Any], says: str) -> None:
    with pytest.raises(ExtensionError, match=says):
        wake_time(method, args, CALLED)


def test_the_registry_serves_the_timer() -> None:
    registry = ExtensionRegistry([TimerExtension()])
    started = time.monotonic()
    woke = asyncio.run(registry.call("nexus.timer", "sleep", [200]))
    assert time.monotonic() - started >= 0.2
    assert datetime.fromisoformat(woke).tzinfo is not None
