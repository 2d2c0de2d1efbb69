"""The sandbox pool is sized by a memory budget unless MAX_INSTANCES is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.capacity import memory_budget
from nexus.config import ConfigError, load_config

GOOD = {"JWT_SECRET": "s3cret", "SECRET_KEY": "k", "CGROUP_MEMORY_MAX": "/nonexistent/memory.max"}


@pytest.mark.parametrize(
    ("environ", "instances"),
    [
        ({}, 64),  # 2048 MiB / 32 MiB
        ({"MEMORY_LIMIT_MB": "64"}, 32),
        ({"MEMORY_LIMIT_MB": "100"}, 20),  # whole instances only
        ({"SANDBOX_MEMORY_BUDGET_MB": "320"}, 10),
        ({"SANDBOX_MEMORY_BUDGET_MB": "100000", "MEMORY_LIMIT_MB": "4"}, 1000),  # the largest pool
        ({"SANDBOX_MEMORY_BUDGET_MB": "1", "MAX_INSTANCES": "7"}, 7),  # an explicit count wins
    ],
)
def test_max_instances_follows_the_budget(environ: dict[str, str], instances: int) -> None:
    assert load_config({**GOOD, **environ}).MAX_INSTANCES == instances


def test_a_container_limit_caps_the_default_budget(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(f"{1024 * 1024 * 1024}\n")  # 1 GiB: 1024 - 256 reserved = 768 MiB = 24 x 32 MiB
    assert load_config({**GOOD, "CGROUP_MEMORY_MAX": str(limit)}).MAX_INSTANCES == 24
    limit.write_text("max\n")
    assert load_config({**GOOD, "CGROUP_MEMORY_MAX": str(limit)}).MAX_INSTANCES == 64
    limit.write_text(f"{1024 * 1024 * 1024}\n")
    explicit = {**GOOD, "CGROUP_MEMORY_MAX": str(limit), "SANDBOX_MEMORY_BUDGET_MB": "2048"}
    assert load_config(explicit).MAX_INSTANCES == 64  # a budget that is set is taken as it is


def test_the_derived_pool_passes_the_start_up_memory_check(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(f"{1024 * 1024 * 1024}\n")
    config = load_config({**GOOD, "CGROUP_MEMORY_MAX": str(limit)})
    budget = memory_budget(config.MAX_INSTANCES, config.MEMORY_LIMIT_MB, 200 * 1024 * 1024, str(limit))
    assert budget.fits, budget.describe()


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"SANDBOX_MEMORY_BUDGET_MB": "16"},
         "SANDBOX_MEMORY_BUDGET_MB=16 is invalid: holds no sandbox instance of MEMORY_LIMIT_MB=32"),
        ({"SANDBOX_MEMORY_BUDGET_MB": "0"}, "SANDBOX_MEMORY_BUDGET_MB=0 is invalid: must be an integer from 1"),
        ({"SANDBOX_MEMORY_BUDGET_MB": "64", "MIN_INSTANCES": "3"},
         "MIN_INSTANCES=3 is invalid: must be <= MAX_INSTANCES (2, SANDBOX_MEMORY_BUDGET_MB=64 / MEMORY_LIMIT_MB=32)"),
    ],
)
def test_a_budget_too_small_is_refused(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({**GOOD, **environ})
    assert needle in str(raised.value)
