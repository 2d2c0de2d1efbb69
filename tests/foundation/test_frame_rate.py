"""The per-socket frame bucket: bursts, the sustained rate, and when a flood counts as persistent."""

from __future__ import annotations

from typing import Any

from workspaces import frame_rate
from workspaces.frame_rate import FrameRate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bucket(monkeypatch: Any, rate: float = 50, burst: int = 200) -> tuple[FrameRate, Clock]:
    clock = Clock()
    monkeypatch.setattr(frame_rate.time, "monotonic", clock)
    return FrameRate(rate, burst), clock


def test_a_burst_is_taken_at_once_and_then_the_rate_refills(monkeypatch: Any) -> None:
    frames, clock = bucket(monkeypatch)
    assert all(frames.take() for _ in range(200))
    assert not frames.take()
    clock.now += 1.0  # one second: 50 more
    assert sum(frames.take() for _ in range(100)) == 50


def test_a_client_that_slows_down_is_never_persistent(monkeypatch: Any) -> None:
    frames, clock = bucket(monkeypatch)
    for _ in range(200):
        frames.take()
    for _ in range(150):
        frames.take()  # refused
    clock.now += 3.0  # refilled past half
    assert frames.take() and frames.refused == 0 and not frames.persistent


def test_a_flood_through_a_whole_burst_of_refusals_is_persistent(monkeypatch: Any) -> None:
    frames, clock = bucket(monkeypatch)
    for _ in range(200):
        frames.take()
    for _ in range(200):
        clock.now += 0.001  # a trickle of refills is not enough to reset the count
        frames.take()
    assert not frames.persistent
    for _ in range(20):
        frames.take()
    assert frames.persistent
