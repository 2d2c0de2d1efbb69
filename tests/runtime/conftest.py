"""Fixtures of the sandbox runtime tests: plain pytest, no Django database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import ExecutionContext, ExecutionResult, Runtime, RuntimeConfig

ALL_CAPABILITIES = ["state:read:*", "state:write:*", "events:emit:*", "view:update:*", "ext:*"]
HEALTH_CODE = "$state.n = $state.n + $args.by; $emit('done', $state.n); return $state.n;"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nexus-cache")


@pytest.fixture(scope="session")
def runtime(cache_dir: Path) -> Iterator[Runtime]:
    """One runtime for the whole session, with a short timeout so runaway cases stay quick."""
    rt = Runtime(
        RuntimeConfig(
            min_instances=2, max_instances=6, timeout_ms=500, cache_dir=str(cache_dir), acquire_timeout_ms=5000
        )
    )
    yield rt
    rt.close()


@pytest.fixture
def make_runtime(cache_dir: Path) -> Iterator[Callable[..., Runtime]]:
    """make_runtime(**config) -> a runtime of its own, closed after the test."""
    made: list[Runtime] = []

    def make(**config: Any) -> Runtime:
        config.setdefault("cache_dir", str(cache_dir))
        config.setdefault("min_instances", 1)
        rt = Runtime(RuntimeConfig(**config))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def context(
    state: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
    capabilities: list[str] | None = None,
    panel_id: str = "panel-1",
    handler_name: str = "handler",
    scope: dict[str, Any] | None = None,
    extensions: dict[str, list[str]] | None = None,
) -> ExecutionContext:
    return ExecutionContext(
        panel_id=panel_id,
        handler_name=handler_name,
        state=state if state is not None else {},
        args=args if args is not None else {},
        capabilities=ALL_CAPABILITIES if capabilities is None else capabilities,
        scope=scope,
        extensions=extensions,
    )


def run(rt: Runtime, code: str, **kwargs: Any) -> ExecutionResult:
    timeout_ms = kwargs.pop("timeout_ms", None)
    return rt.execute(code, context(**kwargs), timeout_ms=timeout_ms)


def assert_healthy(rt: Runtime, panel_id: str = "panel-1") -> None:
    """The runtime still runs an ordinary handler correctly."""
    result = rt.execute(HEALTH_CODE, context(state={"n": 41}, args={"by": 1}, panel_id=panel_id))
    assert result.status == "success", result.error
    assert result.return_value == 42
    assert result.state_mutations == [{"key": "n", "value": 42, "operation": "set"}]
    assert result.events == [{"name": "done", "payload": 42}]
