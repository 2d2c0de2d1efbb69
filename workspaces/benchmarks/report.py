"""Figures of one benchmark case: value, unit, and the baseline and target it is judged by."""

from __future__ import annotations

import statistics
from typing import Any


def median(samples: list[float]) -> float:
    return float(statistics.median(samples)) if samples else float("nan")


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return float(ordered[index])


def case(
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    target: float | None = None,
    target_is_ratio: bool = True,
    higher_is_better: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """``target`` bounds the ratio (value / baseline) when there is a baseline, else the value."""
    result: dict[str, Any] = {"value": round(value, 4), "unit": unit}
    judged = value
    if baseline is not None:
        result["baseline"] = round(baseline, 4)
        result["ratio"] = round(value / baseline, 4) if baseline else None
        if target_is_ratio and result["ratio"] is not None:
            judged = result["ratio"]
    if target is not None:
        result["target"] = target
        result["ok"] = bool(judged >= target) if higher_is_better else bool(judged <= target)
    result.update(extra)
    return result


def skipped(reason: str) -> dict[str, Any]:
    return {"value": None, "unit": "", "skipped": reason}
