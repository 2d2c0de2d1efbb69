"""The runtime's Python API (runtime/__init__.py) and every feature of the sandbox API seen from a handler (docs/nxml.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import (
    ERROR_CODES,
    ExecutionContext,
    ExecutionResult,
    Runtime,
    RuntimeBusyError,
    RuntimeClosedError,
    RuntimeConfig,
)

from .conftest import assert_healthy, context, run

ROOT = Path(__file__).resolve().parents[2]

SPEC_EXAMPLE = textwrap.dedent(
    """
    from runtime import Runtime, ExecutionContext
    rt = Runtime()            # or Runtime(config); one process-wide engine inside
    ctx = ExecutionContext(panel_id="p1", handler_name="inc",
                           state={"counter": 5}, args={"by": 1},
                           capabilities=["state:read:*", "state:write:*", "events:emit:*"])
    res = rt.execute("$state.counter += $args.by; $emit('inc', $state.counter); return $state.counter;",
                     ctx, timeout_ms=1000)
    assert res.status == "success" and res.return_value == 6
    assert res.state_mutations == [{"key": "counter", "value": 6, "operation": "set"}]
    assert res.events == [{"name": "inc", "payload": 6}]
    """
)


def test_spec_example_in_a_plain_python_process(tmp_path: Path) -> None:
    script = SPEC_EXAMPLE + textwrap.dedent(
        """
        import sys
        assert "django" not in sys.modules, "the runtime imported Django"
        assert "prometheus_client" not in sys.modules, "the runtime imported prometheus_client"
        rt.close()
        print("ok")
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO")}
    env["PYTHONPATH"] = str(ROOT)
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("ok")


def test_spec_example_in_process() -> None:
    namespace: dict[str, object] = {}
    exec(compile(SPEC_EXAMPLE, "spec-example", "exec"), namespace)
    rt = namespace["rt"]
    assert isinstance(rt, Runtime)
    rt.close()


# ---------------------------------------------------------------- configuration and arguments


def test_config_defaults_and_validation() -> None:
    config = RuntimeConfig()
    assert (config.min_instances, config.max_instances, config.memory_limit_mb) == (2, 10, 32)
    assert (config.timeout_ms, config.max_host_calls, config.max_cache_size_mb) == (5000, 1000, 64)
    assert config.cache_dir == "/tmp/nexus-cache"
    assert config.acquire_timeout_ms > 0 and config.suspension_ttl_s > 0
    with pytest.raises(ValueError, match="min_instances"):
        RuntimeConfig(min_instances=5, max_instances=2)
    with pytest.raises(ValueError, match="max_instances"):
        RuntimeConfig(max_instances=0)
    with pytest.raises(ValueError, match="timeout_ms"):
        RuntimeConfig(timeout_ms=0)
    with pytest.raises(ValueError, match="memory_limit_mb"):
        RuntimeConfig(memory_limit_mb=1)
    with pytest.raises(ValueError, match="suspension_ttl_s"):
        RuntimeConfig(suspension_ttl_s=0)
    with pytest.raises(TypeError):
        Runtime(config={"min_instances": 1})  # type: ignore[arg-type]


def test_context_validation() -> None:
    with pytest.raises(TypeError):
        ExecutionContext(panel_id="", handler_name="h", state={}, args={}, capabilities=[])
    with pytest.raises(TypeError):
        ExecutionContext(panel_id="p", handler_name="h", state=[], args={}, capabilities=[])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ExecutionContext(panel_id="p", handler_name="h", state={}, args={}, capabilities="state:read:*")
    with pytest.raises(ValueError):
        ExecutionContext(panel_id="p", handler_name="h", state={}, args={}, capabilities=["state:fly:*"])
    with pytest.raises(TypeError):
        ExecutionContext(panel_id="p", handler_name="h", state={}, args={}, capabilities=[], extensions={"x": "get"})


def test_execute_rejects_bad_calls(runtime: Runtime) -> None:
    with pytest.raises(TypeError):
        runtime.execute("return 1", {"panel_id": "p"})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        runtime.execute("return 1", context(), timeout_ms=-5)


def test_result_shape(runtime: Runtime) -> None:
    result = run(runtime, "$log('hi'); return {a: [1, 2], b: null};")
    assert isinstance(result, ExecutionResult)
    assert result.status == "success" and result.error is None and result.suspension is None
    assert result.return_value == {"a": [1, 2], "b": None}
    metrics = result.metrics
    assert set(metrics) == {"duration_us", "memory_used_bytes", "memory_peak_bytes", "host_calls", "cache_hit"}
    assert metrics["duration_us"] > 0 and metrics["memory_used_bytes"] > 0
    assert metrics["memory_peak_bytes"] >= metrics["memory_used_bytes"]
    assert metrics["host_calls"] == 1
    assert result.logs == [{"level": "info", "message": "hi"}]
    assert result.to_dict()["status"] == "success"


# ---------------------------------------------------------------- $state


def test_only_readable_keys_enter_the_sandbox(runtime: Runtime) -> None:
    result = run(
        runtime,
        "return [Object.keys($state).sort(), $state.secret, 'secret' in $state];",
        state={"count": 1, "secret": "s", "name": "n"},
        capabilities=["state:read:count", "state:write:name"],
    )
    assert result.return_value == [["count", "name"], None, False]


def test_prefix_capabilities(runtime: Runtime) -> None:
    caps = ["state:read:user.*", "state:write:user.name"]
    state = {"user.name": "a", "user.age": 3, "other": 1}
    result = run(
        runtime, "$state['user.name'] = 'b'; return [$state['user.age'], $state.other];", state=state, capabilities=caps
    )
    assert result.return_value == [3, None]
    assert result.state_mutations == [{"key": "user.name", "value": "b", "operation": "set"}]
    denied = run(runtime, "$state['user.age'] = 4;", state=state, capabilities=caps)
    assert denied.error["code"] == "PERMISSION_DENIED"
    assert denied.error["resource"] == "state:write:user.age"


def test_mutation_log(runtime: Runtime) -> None:
    result = run(
        runtime,
        "$state.a = 1; $state.a = 2; delete $state.b; $state.c = undefined; $state['ключ'] = '値'; return 0;",
        state={"a": 0, "b": 1},
    )
    assert result.state_mutations == [
        {"key": "a", "value": 2, "operation": "set"},
        {"key": "b", "operation": "delete"},
        {"key": "c", "value": None, "operation": "set"},
        {"key": "ключ", "value": "値", "operation": "set"},
    ]


def test_nested_mutations_are_found(runtime: Runtime) -> None:
    result = run(
        runtime,
        "$state.items.push(3); $state.profile.tags.push('x'); const seen = $state.untouched; return $state.items.length;",
        state={"items": [1, 2], "profile": {"tags": []}, "untouched": {"k": 1}},
    )
    assert result.return_value == 3
    assert sorted(result.state_mutations, key=lambda m: m["key"]) == [
        {"key": "items", "value": [1, 2, 3], "operation": "set"},
        {"key": "profile", "value": {"tags": ["x"]}, "operation": "set"},
    ]


def test_value_set_then_changed_reports_final_value(runtime: Runtime) -> None:
    result = run(runtime, "const list = [1]; $state.list = list; list.push(2); return 1;")
    assert result.state_mutations == [{"key": "list", "value": [1, 2], "operation": "set"}]


def test_direct_write_denied_at_its_line(runtime: Runtime) -> None:
    result = run(
        runtime,
        "const a = 1;\nconst b = 2;\n  $state.count = a + b;\nreturn 1;",
        state={"count": 0},
        capabilities=["state:read:*"],
    )
    error = result.error
    assert error["code"] == "PERMISSION_DENIED"
    assert error["location"]["line"] == 3
    assert 3 <= error["location"]["column"] <= len("  $state.count = a + b;")
    assert error["snippet"] == "  $state.count = a + b;"
    assert "handler:3:" in error["stack"]


def test_write_implies_read(runtime: Runtime) -> None:
    result = run(runtime, "$state.n += 1; return $state.n;", state={"n": 1}, capabilities=["state:write:n"])
    assert result.return_value == 2


def test_state_proxy_behaves_like_an_object(runtime: Runtime) -> None:
    result = run(
        runtime,
        "return [JSON.stringify($state), Object.entries($state).length, {...$state}.a, 'toString' in $state, $state.toString];",
        state={"a": 1, "b": {"c": 2}},
    )
    assert result.return_value == ['{"a":1,"b":{"c":2}}', 2, 1, False, None]


# ---------------------------------------------------------------- $args, $scope, $emit, $view, $log


def test_args_are_deep_frozen(runtime: Runtime) -> None:
    result = run(
        runtime,
        "return [Object.isFrozen($args), Object.isFrozen($args.o), $args.o.list[1]];",
        args={"o": {"list": [1, 2]}},
    )
    assert result.return_value == [True, True, 2]


def test_each_execution_sees_its_own_args(make_runtime) -> None:  # type: ignore[no-untyped-def]
    # One instance, so every run lands where the previous arguments are still held.
    rt = make_runtime(min_instances=1, max_instances=1)
    echo = "return [$args.v, Object.isFrozen($args)];"
    sequence = [{"v": 1}, {"v": 1}, {"v": True}, {"v": 1.5}, {"v": 1}, {}, {}, {"v": [1, {"w": 2}]}]
    for args in sequence:
        result = run(rt, echo, args=args, panel_id="args")
        assert result.return_value == [args.get("v"), True], args
    assert run(rt, "throw new Error('x')", args={"v": 7}, panel_id="args").status == "error"
    assert run(rt, echo, args={"v": 7}, panel_id="args").return_value == [7, True]
    assert rt.check_syntax("return 1;") is None
    assert run(rt, echo, args={"v": 7}, panel_id="args").return_value == [7, True]
    assert run(rt, "$args.v.push(1)", args={"v": [1]}, panel_id="args").error["code"] == "EXECUTION_ERROR"
    assert run(rt, "return $args.v.length", args={"v": [1]}, panel_id="args").return_value == 1


def test_scope(runtime: Runtime) -> None:
    assert run(runtime, "return $scope.item.id;", scope={"item": {"id": 7}}).return_value == 7
    assert run(runtime, "return [Object.keys($scope).length, Object.isFrozen($scope)];").return_value == [0, True]


def test_emit_snapshots_payload(runtime: Runtime) -> None:
    result = run(runtime, "const p = {n: 1}; $emit('a', p); p.n = 2; $emit('b', p); $emit('c');")
    assert result.events == [
        {"name": "a", "payload": {"n": 1}},
        {"name": "b", "payload": {"n": 2}},
        {"name": "c", "payload": None},
    ]


def test_view_commands(runtime: Runtime) -> None:
    result = run(runtime, "$view.setFilter('table', {q: 'x'}); $view.scrollTo('log', 120); $view.focus('input');")
    assert result.view_commands == [
        {"type": "setFilter", "componentId": "table", "args": {"value": {"q": "x"}}},
        {"type": "scrollTo", "componentId": "log", "args": {"position": 120}},
        {"type": "focus", "componentId": "input", "args": {}},
    ]
    assert result.metrics["host_calls"] == 3


def test_logs(runtime: Runtime) -> None:
    result = run(runtime, "$log('a', 1, {b: 2}); $log.debug('d'); $log.info('i'); $log.warn('w'); $log.error('e');")
    assert result.logs == [
        {"level": "info", "message": 'a 1 {"b":2}'},
        {"level": "debug", "message": "d"},
        {"level": "info", "message": "i"},
        {"level": "warn", "message": "w"},
        {"level": "error", "message": "e"},
    ]


def test_logs_survive_errors(runtime: Runtime) -> None:
    result = run(runtime, "$log('before'); throw new Error('after');")
    assert result.error["code"] == "EXECUTION_ERROR"
    assert result.logs == [{"level": "info", "message": "before"}]


def test_await_and_return_work(runtime: Runtime) -> None:
    result = run(runtime, "const v = await Promise.resolve(20); await null; return v + 1;")
    assert result.return_value == 21


def test_jobs_left_behind_run_after_the_answer_and_act_on_nothing(runtime: Runtime) -> None:
    code = (
        "for (let i = 0; i < 50; i++) Promise.resolve(i).then((n) => { JSON.stringify({ n, pad: 'x'.repeat(300) }); });"
        "Promise.resolve().then(() => { $emit('late', 1); });"
        "Promise.resolve().then(() => { throw new Error('late failure'); });"
        "$state.n = 3; return 'answer';"
    )
    result = run(runtime, code, state={"n": 1}, panel_id="left-behind")
    assert result.status == "success", result.error
    assert result.return_value == "answer"
    assert result.events == []
    assert result.state_mutations == [{"key": "n", "value": 3, "operation": "set"}]
    # An await runs the job queue: anything still queued would act on this execution.
    after = run(runtime, "await null; $emit('next', 2); return 1;", panel_id="left-behind")
    assert after.events == [{"name": "next", "payload": 2}]
    assert_healthy(runtime, panel_id="left-behind")


def test_errors_carry_location_and_stack(runtime: Runtime) -> None:
    result = run(runtime, "function inner() {\n  throw new TypeError('bad');\n}\nreturn inner();")
    error = result.error
    assert error["code"] == "EXECUTION_ERROR"
    assert error["message"] == "TypeError: bad"
    assert error["location"]["line"] == 2
    assert error["snippet"] == "  throw new TypeError('bad');"
    assert "handler:2:" in error["stack"] and "handler:4:" in error["stack"]
    assert "<input>" not in error["stack"] and "eval_script" not in error["stack"]
    top = run(runtime, "const a = 1;\nnull.x;")
    assert top.error["location"] == {"line": 2, "column": 1}


def test_every_error_code_is_known(runtime: Runtime) -> None:
    result = run(runtime, "throw new Error('x');")
    assert result.error["code"] in ERROR_CODES


# ---------------------------------------------------------------- check_syntax


def test_check_syntax(runtime: Runtime) -> None:
    assert runtime.check_syntax("return 1;") is None
    assert runtime.check_syntax("while (true) {}") is None  # compiled, never run
    assert runtime.check_syntax("await $ext.http.get('/'); return 1;") is None
    error = runtime.check_syntax("let a = 1;\nlet b = ;\nreturn a;")
    assert error is not None and error["code"] == "COMPILATION_ERROR"
    assert error["location"]["line"] == 2
    assert 1 <= error["location"]["column"] <= len("let b = ;") + 1
    assert error["snippet"] == "let b = ;"
    assert runtime.check_syntax(7)["code"] == "INVALID_HANDLER"  # type: ignore[arg-type,index]


def test_compilation_error_from_execute(runtime: Runtime) -> None:
    result = run(runtime, "return 1 +;")
    assert result.error["code"] == "COMPILATION_ERROR"
    assert result.error["location"]["line"] == 1


def test_breakout_is_a_compilation_error_without_side_effects(runtime: Runtime) -> None:
    error = runtime.check_syntax("return 1;\n}); let leaked = 1; (function () {")
    assert error is not None and error["code"] == "COMPILATION_ERROR"
    assert error["location"]["line"] == 2
    assert run(runtime, "return typeof leaked;").return_value == "undefined"


# ---------------------------------------------------------------- cache, isolation, pool


def test_compiled_handler_cache(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1)
    code = "return $args.x * 2;"
    first = rt.execute(code, context(args={"x": 1}, panel_id="a"))
    second = rt.execute(code, context(args={"x": 2}, panel_id="a"))
    assert (first.metrics["cache_hit"], second.metrics["cache_hit"]) == (False, True)
    assert second.return_value == 4
    # Another panel never sees the compiled handlers (or anything else) of the first.
    other = rt.execute(code, context(args={"x": 3}, panel_id="b"))
    assert other.metrics["cache_hit"] is False and other.return_value == 6
    stats = rt.stats()
    assert stats["cache_hits"] == 1 and stats["cache_misses"] == 2
    assert stats["cache_hit_rate"] == pytest.approx(1 / 3)
    assert stats["instances_reset"] == 1


def test_nothing_leaks_between_executions(runtime: Runtime) -> None:
    code = (
        "const before = [typeof leakVar, typeof globalThis.leakProp, Object.keys($emit).length];"
        "var leakVar = 1; try { globalThis.leakProp = 1; } catch (e) {}"
        "try { $emit.stash = 1; } catch (e) {}"
        "return before;"
    )
    first = run(runtime, code, panel_id="leaks")
    second = run(runtime, code, panel_id="leaks")
    assert first.return_value == second.return_value == ["undefined", "undefined", 0]


def test_panels_are_isolated(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1)
    rt.execute("return 1;", context(panel_id="a"))
    result = rt.execute("return [typeof x, Object.isFrozen(Object.prototype)];", context(panel_id="b"))
    assert result.return_value == ["undefined", True]


def test_math_random_differs_between_instances(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=2, max_instances=2)
    values = {rt.execute("return Math.random();", context(panel_id=f"r{i}")).return_value for i in range(2)}
    assert len(values) == 2
    assert all(0 <= value < 1 for value in values)


def test_pool_warm_and_capped(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=3, max_instances=3)
    stats = rt.stats()
    assert stats["total_instances"] == 3 and stats["available_instances"] == 3 and stats["active_instances"] == 0


def test_busy_pool_raises(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1, acquire_timeout_ms=100)
    # A suspended execution holds no instance ...
    waiting = rt.execute("await $ext.http.get('/');", context(extensions={"http": ["get"]}))
    assert waiting.status == "suspended"
    assert rt.stats()["active_instances"] == 0
    # ... a running one does (held here as an execution would hold it).
    held = rt._pool.acquire("holder", 1)
    assert rt.stats()["active_instances"] == 1
    with pytest.raises(RuntimeBusyError) as raised:
        rt.execute("return 1;", context(panel_id="other"))
    assert raised.value.code == "RUNTIME_BUSY"
    rt._pool.release(held)
    assert rt.execute("return 1;", context(panel_id="other")).return_value == 1
    assert rt.cancel(waiting.suspension["suspension_id"]) is True


def test_failed_instances_are_replaced(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=2, max_instances=2, timeout_ms=100)
    result = rt.execute("while (true) {}", context())
    assert result.error["code"] == "TIMEOUT"
    stats = rt.stats()
    assert stats["instances_discarded"] == 1
    assert stats["total_instances"] == 2
    assert_healthy(rt)


def test_stats(runtime: Runtime) -> None:
    assert_healthy(runtime)
    stats = runtime.stats()
    for key in (
        "executions",
        "active_instances",
        "available_instances",
        "cache_hits",
        "cache_misses",
        "cache_hit_rate",
        "avg_duration_us",
        "memory_bytes",
        "memory_peak_bytes",
        "suspended",
    ):
        assert key in stats, key
    assert stats["executions"] >= 1 and stats["avg_duration_us"] > 0 and stats["memory_bytes"] > 0
    assert stats["module_source"] in ("disk", "compiled")


def test_close(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime()
    with rt:
        assert_healthy(rt)
    assert rt.closed
    rt.close()
    with pytest.raises(RuntimeClosedError):
        rt.execute("return 1;", context())
    with pytest.raises(RuntimeClosedError):
        rt.check_syntax("return 1;")


# ---------------------------------------------------------------- async API


async def test_aexecute_runs_off_the_event_loop(runtime: Runtime) -> None:
    import asyncio

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    busy = "const end = Date.now() + 200; while (Date.now() < end) {} return 1;"
    result = await runtime.aexecute(busy, context(panel_id="async"))
    task.cancel()
    assert result.return_value == 1
    assert ticks >= 5, "the event loop was blocked during the execution"


async def test_aexecute_runs_executions_concurrently(make_runtime) -> None:  # type: ignore[no-untyped-def]
    """Two executions overlap in time: guest work does not hold the GIL.

    (The speed-up itself depends on free cores; runtime.bench.bench_parallel measures it.)
    """
    import asyncio

    rt = make_runtime(min_instances=2, max_instances=2, timeout_ms=5000)
    busy = "const start = Date.now(); let x = 0; for (let i = 0; i < 2e6; i++) x += i % 7; return [start, Date.now()];"
    results = await asyncio.gather(*(rt.aexecute(busy, context(panel_id=f"p{i}")) for i in range(2)))
    (start_a, end_a), (start_b, end_b) = (result.return_value for result in results)
    overlap = min(end_a, end_b) - max(start_a, start_b)
    shortest = min(end_a - start_a, end_b - start_b)
    assert overlap > 0.5 * shortest, (start_a, end_a, start_b, end_b)
