"""The engine (module cache, call path), the hard limits and the host-side re-checks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import Runtime, _wasmcall
from runtime import sandbox as sandbox_module
from runtime.engine import CACHE_PREFIX

from .conftest import assert_healthy, context, run

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from runtime import ExecutionContext, Runtime, RuntimeConfig
    rt = Runtime(RuntimeConfig(cache_dir=sys.argv[1], min_instances=1))
    ctx = ExecutionContext(panel_id="p", handler_name="h", state={}, args={}, capabilities=[])
    result = rt.execute("return 6 * 7;", ctx)
    print(json.dumps({"source": rt.stats()["module_source"], "value": result.return_value}))
    rt.close()
    """
)


def probe(cache_dir: Path) -> tuple[dict[str, Any], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(cache_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def test_restart_deserializes_instead_of_compiling(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = probe(cache)
    assert first == {"source": "compiled", "value": 42}
    files = sorted(path.name for path in cache.iterdir())
    assert any(name.endswith(".cwasm") for name in files), files
    assert any(name.startswith(f"{CACHE_PREFIX}image-") for name in files), files
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    second, _ = probe(cache)
    assert second == {"source": "disk", "value": 42}


def test_damaged_cache_is_recompiled(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(cache)
    for path in cache.iterdir():
        path.write_bytes(b"garbage")
    result, stderr = probe(cache)
    assert result == {"source": "compiled", "value": 42}
    assert "unusable" in stderr


def test_cache_in_a_shared_directory_is_not_trusted(tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    result, stderr = probe(cache)
    assert result == {"source": "compiled", "value": 42}
    assert "not a private directory" in stderr
    assert list(cache.iterdir()) == []


def test_fast_call_path_is_in_use(runtime: Runtime) -> None:
    assert _wasmcall.FAST_PATH_AVAILABLE
    sandbox = runtime._pool.acquire("probe", 5)
    try:
        assert sandbox.calls.fast
    finally:
        runtime._pool.release(sandbox)


def test_public_call_fallback(make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(_wasmcall, "FAST_PATH_AVAILABLE", False)
    rt = make_runtime(min_instances=1, max_instances=1, timeout_ms=200)
    assert_healthy(rt)
    assert run(rt, "while (true) {}").error["code"] == "TIMEOUT"
    assert run(rt, "function f() { return f() + 1; } return f();").error["code"] == "RESOURCE_LIMIT"
    assert_healthy(rt)


# ---------------------------------------------------------------- limits


def test_timeout_is_prompt(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(timeout_ms=5000)
    for limit in (100, 300):
        began = time.perf_counter()
        result = run(rt, "while (true) {}", timeout_ms=limit)
        elapsed = (time.perf_counter() - began) * 1000
        assert result.error["code"] == "TIMEOUT"
        assert limit <= elapsed + 5 and elapsed < limit + 150, elapsed
        assert result.metrics["duration_us"] >= limit * 1000 * 0.9


def test_memory_limit_is_fast_and_capped(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(memory_limit_mb=16, timeout_ms=10_000)
    began = time.perf_counter()
    result = run(rt, "const keep = []; while (true) keep.push(new Array(1e5).fill(0));")
    assert result.error["code"] == "MEMORY_LIMIT"
    assert time.perf_counter() - began < 2.0
    assert result.metrics["memory_peak_bytes"] <= 16 * 1024 * 1024
    assert rt.stats()["memory_peak_bytes"] <= 16 * 1024 * 1024
    assert_healthy(rt)


def test_limit_hits_discard_the_instance(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1)
    for code in ("for (let i = 0; i < 101; i++) $emit('e', i);", "function f() { f(); } f();"):
        before = rt.stats()["instances_discarded"]
        assert run(rt, code).error["code"] == "RESOURCE_LIMIT"
        assert rt.stats()["instances_discarded"] == before + 1
    assert_healthy(rt)


def test_max_host_calls_is_configurable(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(max_host_calls=3)
    assert run(rt, "$log(1); $log(2); $log(3); return 1;").status == "success"
    assert run(rt, "$log(1); $log(2); $log(3); $log(4);").error["code"] == "RESOURCE_LIMIT"


def test_results_just_under_the_limits(runtime: Runtime) -> None:
    events = run(runtime, "for (let i = 0; i < 100; i++) $emit('e', i); return 1;")
    assert events.status == "success" and len(events.events) == 100
    mutations = run(runtime, "for (let i = 0; i < 1000; i++) $state['k' + i] = i; return 1;")
    assert mutations.status == "success" and len(mutations.state_mutations) == 1000
    big = run(runtime, "return 'x'.repeat(1000 * 1000);")
    assert big.status == "success" and len(big.return_value) == 1000 * 1000


def test_large_state_round_trip(runtime: Runtime) -> None:
    items = [{"id": index, "name": f"item {index}"} for index in range(2000)]
    result = run(runtime, "$state.items.push({id: -1}); return $state.items.length;", state={"items": items})
    assert result.return_value == 2001
    assert result.state_mutations[0]["value"][-1] == {"id": -1}


def test_request_larger_than_the_io_buffer(runtime: Runtime) -> None:
    text = "é" * (sandbox_module.IO_BUFFER_BYTES // 2 + 100)
    result = run(runtime, "return $args.text.length;", args={"text": text})
    assert result.return_value == len(text)


# ---------------------------------------------------------------- the host does not trust the glue


def forge(monkeypatch: pytest.MonkeyPatch, answer: list[Any]) -> None:
    """Make every instance answer ``answer``, as a guest that rewrote its glue could."""
    monkeypatch.setattr(sandbox_module.Sandbox, "start", lambda self, request, ticks: answer)


FORGERIES = [
    ([0, None, [["count", 1]], [], [], [], 0], ["state:read:*"], "PERMISSION_DENIED"),
    ([0, None, [["count"]], [], [], [], 0], ["state:read:*"], "PERMISSION_DENIED"),
    ([0, None, [], [["secret", 1]], [], [], 1], ["events:emit:public"], "PERMISSION_DENIED"),
    ([0, None, [], [], [["focus", "admin", {}]], [], 1], ["view:update:main"], "PERMISSION_DENIED"),
    ([2, [1, "http", "get", ["/"]], [], [], [], [], 1], [], "PERMISSION_DENIED"),
    ([2, [1, "http", "delete", ["/"]], [], [], [], [], 1], ["ext:http"], "PERMISSION_DENIED"),
    ([0, None, [], [], [], [], 5000], ["state:read:*"], "RESOURCE_LIMIT"),
    ([0, None, [], [["e", i] for i in range(101)], [], [], 101], ["events:emit:*"], "RESOURCE_LIMIT"),
    ([0, None, [[1, 2]], [], [], [], 0], ["state:write:*"], "INTERNAL_ERROR"),
    ([0, None, [], [], [["explode", "x", {}]], [], 1], ["view:update:*"], "INTERNAL_ERROR"),
    ([0, None, "nope", [], [], [], 0], [], "INTERNAL_ERROR"),
    ([1, "not a dict", [], 0], [], "INTERNAL_ERROR"),
]


@pytest.mark.parametrize(("answer", "capabilities", "expected"), FORGERIES)
def test_forged_answers_are_refused(
    make_runtime,
    monkeypatch: pytest.MonkeyPatch,
    answer: list[Any],
    capabilities: list[str],
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    rt = make_runtime(min_instances=1, max_instances=1)
    with monkeypatch.context() as patch:
        forge(patch, answer)
        result = rt.execute("return 1;", context(capabilities=capabilities, extensions={"http": ["get"]}))
    assert result.status == "error"
    assert result.error["code"] == expected, result.error
    assert result.state_mutations == [] and result.events == [] and result.suspension is None
    assert rt.stats()["instances_discarded"] == 1, "an instance that lied was kept"
    assert_healthy(rt)


def test_forged_glue_error_code_is_normalized(make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime()
    with monkeypatch.context() as patch:
        forge(patch, [1, {"code": "ALL_GOOD", "message": "trust me"}, [], 0])
        result = rt.execute("return 1;", context())
    assert result.error["code"] == "INTERNAL_ERROR"
