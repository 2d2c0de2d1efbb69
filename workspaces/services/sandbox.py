"""The process-wide sandbox runtime, configured from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from runtime import ExecutionContext, Runtime, RuntimeConfig
from runtime.engine import GuestModule, guest_module, prepare_cache_dir

_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime_config() -> RuntimeConfig:
    config = settings.NEXUS
    return RuntimeConfig(
        min_instances=config.MIN_INSTANCES,
        max_instances=config.MAX_INSTANCES,
        memory_limit_mb=config.MEMORY_LIMIT_MB,
        timeout_ms=config.TIMEOUT_MS,
        max_host_calls=config.MAX_HOST_CALLS,
        cache_dir=config.module_cache_dir,
        max_cache_size_mb=config.MAX_CACHE_SIZE_MB,
        max_suspended=config.MAX_SUSPENDED,
    )


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime(runtime_config())
    return _runtime


def check_syntax(code: str) -> dict[str, Any] | None:
    """Compile one handler without running it (``Runtime.check_syntax``); None when it compiles."""
    error = get_runtime().check_syntax(code)
    return None if error is None else dict(error)


def load_guest_module() -> GuestModule:
    """The compiled QuickJS module, from the module cache or compiled (and cached) now."""
    config = settings.NEXUS
    return guest_module(config.module_cache_dir, config.MAX_CACHE_SIZE_MB)


def module_cache_is_private(directory: Path) -> bool:
    """Whether the runtime will use ``directory`` for its module cache (created 0700 when missing)."""
    return prepare_cache_dir(directory)


def runtime_benchmarks() -> dict[str, Callable[[bool], dict[str, Any]]]:
    """The runtime's cases of ``nexus_bench``, by name."""
    from runtime import bench

    return {
        "runtime.execute": bench.bench_execute,
        "runtime.parallel": bench.bench_parallel,
        "runtime.cold_start": bench.bench_cold_start,
        "runtime.instance_memory": bench.bench_instance_memory,
        "runtime.switch": bench.bench_switch,
        "runtime.suspend_resume": bench.bench_suspend_resume,
    }


def self_test() -> None:
    """Run a tiny handler end to end; raise when the sandbox does not answer correctly."""
    context = ExecutionContext(
        panel_id="__selftest__",
        handler_name="selftest",
        state={"n": 1},
        args={"by": 2},
        capabilities=["state:read:*", "state:write:*"],
    )
    result = get_runtime().execute("$state.n += $args.by; return $state.n;", context)
    if result.status != "success" or result.return_value != 3:
        raise RuntimeError(f"sandbox self-test failed: {result.status} {result.error}")


def runtime_summary() -> dict[str, Any]:
    stats = get_runtime().stats()
    return {
        "activeInstances": stats.get("active_instances", 0),
        "availableInstances": stats.get("available_instances", 0),
        "maxInstances": settings.NEXUS.MAX_INSTANCES,
        "cacheHitRate": stats.get("cache_hit_rate", 0.0),
        "executions": stats.get("executions", 0),
        "avgDurationUs": stats.get("avg_duration_us", 0),
        "suspended": stats.get("suspended", 0),
        "waitingCallers": stats.get("waiting_callers", 0),
        "waitingWorkspaces": stats.get("waiting_tenants", 0),
        "memoryBytes": stats.get("memory_bytes", stats.get("memory_used_bytes", 0)),
    }
