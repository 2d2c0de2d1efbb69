"""Benchmarks of the sandbox runtime, used by ``manage.py nexus_bench``.

Each function returns ``{"value", "unit", "baseline"?, "ratio"?, "target"?, "ok"?, ...}``.
``quick=True`` variants finish in a few seconds; the full ones take more samples.
Timings are medians, so a stray pause of the machine does not move them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .execution import ExecutionContext
from .limits import RuntimeConfig
from .runtime import Runtime

COUNTER_CODE = "$state.counter += $args.by; $emit('inc', $state.counter); return $state.counter;"
COUNTER_CAPABILITIES = ["state:read:*", "state:write:*", "events:emit:*"]
SORT_CODE = "const a = $args.list.slice(); a.sort((x, y) => x - y); let s = 0; for (const v of a) s += v; return s;"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

EXECUTE_TARGET_RATIO = 0.15
PARALLEL_TARGET = 1.7
COLD_START_TARGET_MS = 100.0
INSTANCE_MEMORY_TARGET_MIB = 4.0


def _median_us(call: Callable[[], Any], count: int) -> float:
    samples = []
    for _ in range(count):
        began = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - began)
    return statistics.median(samples) / 1000


def _counter_context(panel_id: str = "bench") -> ExecutionContext:
    return ExecutionContext(
        panel_id=panel_id,
        handler_name="increment",
        state={"counter": 5},
        args={"by": 1},
        capabilities=COUNTER_CAPABILITIES,
    )


def bench_execute(quick: bool = False) -> dict[str, Any]:
    """Median ``rt.execute`` of the counter handler (warm pool, compiled handler) next to
    the median ``quickjs_rs`` ``ctx.eval("1+1")`` measured in the same process."""
    import quickjs_rs

    rounds, per_round = (4, 1000) if quick else (10, 4000)
    ctx = _counter_context()
    runtime = Runtime(RuntimeConfig(min_instances=1, max_instances=2))
    baseline_runtime = quickjs_rs.Runtime()
    baseline_context = baseline_runtime.new_context()
    try:
        result = runtime.execute(COUNTER_CODE, ctx)
        if result.status != "success" or result.return_value != 6:
            raise RuntimeError(f"counter handler failed: {result.error}")
        for _ in range(per_round // 2):
            runtime.execute(COUNTER_CODE, ctx)
            baseline_context.eval("1+1")
        ours: list[float] = []
        theirs: list[float] = []
        # Alternate the two so that a change of machine load hits both alike.
        for _ in range(rounds):
            ours.append(_median_us(lambda: runtime.execute(COUNTER_CODE, ctx), per_round))
            theirs.append(_median_us(lambda: baseline_context.eval("1+1"), per_round // 4))
    finally:
        runtime.close()
        baseline_context.close()
        baseline_runtime.close()
    value = statistics.median(ours)
    baseline = statistics.median(theirs)
    ratio = value / baseline
    return {
        "value": round(value, 2),
        "unit": "us",
        "baseline": round(baseline, 2),
        "ratio": round(ratio, 3),
        "target": EXECUTE_TARGET_RATIO,
        "ok": ratio <= EXECUTE_TARGET_RATIO,
        "description": "median rt.execute of the counter handler vs quickjs_rs ctx.eval('1+1')",
    }


def bench_parallel(quick: bool = False) -> dict[str, Any]:
    """Executions per second of a compute-heavy handler with two threads, over one thread."""
    seconds = 1.5 if quick else 4.0
    numbers = [(index * 7919) % 10007 for index in range(5000)]
    expected = sum(numbers)
    runtime = Runtime(RuntimeConfig(min_instances=2, max_instances=2, timeout_ms=10_000))
    try:
        contexts = [
            ExecutionContext(
                panel_id=f"bench-{index}", handler_name="sort", state={}, args={"list": numbers}, capabilities=[]
            )
            for index in range(2)
        ]
        for ctx in contexts:
            result = runtime.execute(SORT_CODE, ctx)
            if result.status != "success" or result.return_value != expected:
                raise RuntimeError(f"sort handler failed: {result.error}")
        one = _throughput(runtime, contexts[:1], seconds)
        two = _throughput(runtime, contexts, seconds)
    finally:
        runtime.close()
    ratio = two / one if one else 0.0
    return {
        "value": round(ratio, 3),
        "unit": "x",
        "baseline": round(one, 1),
        "ratio": round(ratio, 3),
        "target": PARALLEL_TARGET,
        "ok": ratio >= PARALLEL_TARGET,
        "one_thread_per_s": round(one, 1),
        "two_threads_per_s": round(two, 1),
        "description": "executions/s of sort+sum over 5000 numbers, 2 threads over 1",
    }


def _throughput(runtime: Runtime, contexts: list[ExecutionContext], seconds: float) -> float:
    counts = [0] * len(contexts)
    start = threading.Barrier(len(contexts) + 1)
    stop_at: list[float] = []

    def worker(index: int) -> None:
        start.wait()
        deadline = stop_at[0]
        while time.perf_counter() < deadline:
            runtime.execute(SORT_CODE, contexts[index])
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(contexts))]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


_COLD_START_SCRIPT = """
import json, time
began = time.perf_counter()
from runtime import ExecutionContext, Runtime, RuntimeConfig
runtime = Runtime(RuntimeConfig(cache_dir={cache_dir!r}))
context = ExecutionContext(panel_id="cold", handler_name="inc", state={{"counter": 5}}, args={{"by": 1}},
                           capabilities={caps!r})
result = runtime.execute({code!r}, context)
elapsed = (time.perf_counter() - began) * 1000
print(json.dumps({{"ms": elapsed, "ok": result.status == "success" and result.return_value == 6,
                  "source": runtime.stats()["module_source"]}}))
runtime.close()
"""


def _cold_start(cache_dir: str) -> dict[str, Any]:
    script = _COLD_START_SCRIPT.format(cache_dir=cache_dir, caps=COUNTER_CAPABILITIES, code=COUNTER_CODE)
    began = time.perf_counter()
    completed = _python(script)
    wall = (time.perf_counter() - began) * 1000
    if completed.returncode != 0:
        raise RuntimeError(f"cold start child failed: {completed.stderr.strip()[-500:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if not report["ok"]:
        raise RuntimeError("cold start child got a wrong result")
    report["process_ms"] = wall
    return dict(report)


def _python(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter that can import this project."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=180,
        check=False,
    )


def bench_cold_start(quick: bool = False) -> dict[str, Any]:
    """Time from the start of a new Python process (imports included) to its first result,
    with the compiled-module cache warm, then empty."""
    warm_runs, empty_runs = (2, 1) if quick else (5, 2)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as scratch:
        warm_dir = os.path.join(scratch, "warm")
        _cold_start(warm_dir)  # fills the cache
        warm = [_cold_start(warm_dir) for _ in range(warm_runs)]
        empty = [_cold_start(os.path.join(scratch, f"empty-{index}")) for index in range(empty_runs)]
    if any(report["source"] != "disk" for report in warm) or any(report["source"] != "compiled" for report in empty):
        raise RuntimeError("the module cache did not behave as expected")
    warm_ms = statistics.median(report["ms"] for report in warm)
    empty_ms = statistics.median(report["ms"] for report in empty)
    return {
        "value": round(warm_ms, 1),
        "unit": "ms",
        "baseline": round(empty_ms, 1),
        "target": COLD_START_TARGET_MS,
        "ok": warm_ms <= COLD_START_TARGET_MS,
        "warm_ms": round(warm_ms, 1),
        "empty_ms": round(empty_ms, 1),
        "process_warm_ms": round(statistics.median(report["process_ms"] for report in warm), 1),
        "description": "first execution in a new process: module cache warm (value) and empty (baseline)",
    }


_MEMORY_SCRIPT = """
import json, re
from runtime import ExecutionContext, Runtime, RuntimeConfig

def rss():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\\s+(\\d+)", status.read()).group(1)) * 1024

count = {count}
runtime = Runtime(RuntimeConfig(min_instances=1, max_instances=count + 1))
def run(panel):
    context = ExecutionContext(panel_id=panel, handler_name="inc", state={{"counter": 5}}, args={{"by": 1}},
                               capabilities={caps!r})
    assert runtime.execute({code!r}, context).status == "success"
run("warm-up")
before = rss()
held = [runtime._pool.acquire(f"panel-{{index}}", 5) for index in range(count)]
for sandbox in held:
    runtime._pool.release(sandbox)
for index in range(count):
    run(f"panel-{{index}}")
after = rss()
print(json.dumps({{"per_instance": (after - before) / count, "instances": runtime.stats()["total_instances"]}}))
runtime.close()
"""


def bench_instance_memory(quick: bool = False) -> dict[str, Any]:
    """Resident memory added per pooled instance (each has run the counter handler)."""
    if not os.path.exists("/proc/self/status"):
        return {
            "value": None,
            "unit": "MiB",
            "target": INSTANCE_MEMORY_TARGET_MIB,
            "ok": None,
            "description": "needs /proc (Linux)",
        }
    count = 4 if quick else 9
    script = _MEMORY_SCRIPT.format(count=count, caps=COUNTER_CAPABILITIES, code=COUNTER_CODE)
    completed = _python(script)
    if completed.returncode != 0:
        raise RuntimeError(f"memory child failed: {completed.stderr.strip()[-500:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    mib = report["per_instance"] / (1024 * 1024)
    return {
        "value": round(mib, 2),
        "unit": "MiB",
        "target": INSTANCE_MEMORY_TARGET_MIB,
        "ok": mib <= INSTANCE_MEMORY_TARGET_MIB,
        "instances": report["instances"],
        "description": "RSS added per pooled instance",
    }


SWITCH_TARGET_RATIO = 2.0


def bench_switch(quick: bool = False) -> dict[str, Any]:
    """Median execution on an instance that last served another panel, over ``rt.execute`` on its own panel.

    One instance and two panels taking turns: every execution of the switching round finds the
    instance left by the other panel; the baseline round runs one panel back to back. The
    rounds alternate so that a change of machine load hits both alike.
    """
    rounds, per_round = (3, 100) if quick else (8, 400)
    runtime = Runtime(RuntimeConfig(min_instances=1, max_instances=1))
    panels = [_counter_context("switch-a"), _counter_context("switch-b")]
    turn = [0]

    def switching() -> None:
        turn[0] ^= 1
        runtime.execute(COUNTER_CODE, panels[turn[0]])

    try:
        for ctx in panels:
            result = runtime.execute(COUNTER_CODE, ctx)
            if result.status != "success" or result.return_value != 6:
                raise RuntimeError(f"counter handler failed: {result.error}")
        switched: list[float] = []
        same: list[float] = []
        resets = 0
        for _ in range(rounds):
            runtime.execute(COUNTER_CODE, panels[0])  # the instance is panel A's: the round starts with B
            turn[0] = 0
            before = runtime.stats()["instances_reset"]
            switched.append(_median_us(switching, per_round))
            resets += runtime.stats()["instances_reset"] - before
            same.append(_median_us(lambda: runtime.execute(COUNTER_CODE, panels[0]), per_round))
    finally:
        runtime.close()
    value, baseline = statistics.median(switched), statistics.median(same)
    ratio = value / baseline
    return {
        "value": round(value, 2),
        "unit": "us",
        "baseline": round(baseline, 2),
        "ratio": round(ratio, 3),
        "target": SWITCH_TARGET_RATIO,
        "ok": ratio <= SWITCH_TARGET_RATIO,
        "switches": rounds * per_round,
        "full_resets": resets,
        "description": "median execution after another panel used the instance vs rt.execute on its own panel",
    }

# The monitor sample's check, with and without its await (the reply is the same either way).
MONITOR_CODE = """
$state.loading = true;
try {
  const started = Date.now();
  const res = AWAIT;
  $state.status = res.status === 200 ? 'online' : 'degraded';
  $state.history.push({ t: started, ms: Date.now() - started });
  $state.logs.push(new Date(started).toISOString() + ' GET ' + $state.target + ' ' + res.status);
} catch (e) {
  $state.status = 'offline';
  $state.logs.push(new Date().toISOString() + ' GET ' + $state.target + ' failed: ' + e.message);
} finally {
  $state.loading = false;
  $state.history = $state.history.slice(-60);
  $state.logs = $state.logs.slice(-200);
}
return $state.status;
"""
MONITOR_WAITING = MONITOR_CODE.replace("AWAIT", "await $ext.http.get($state.target)")
MONITOR_DIRECT = MONITOR_CODE.replace("AWAIT", "({ status: 200 })")
SUSPEND_TARGET_RATIO = 3.0
SNAPSHOT_TARGET_KIB = 64.0


def _monitor_context(panel_id: str) -> ExecutionContext:
    """A monitor panel in its steady state: an hour of timings and 200 log lines."""
    state = {
        "target": "/health",
        "status": "online",
        "loading": False,
        "history": [{"t": 1_700_000_000_000 + index * 60_000, "ms": 20 + index % 7} for index in range(60)],
        "logs": [f"2026-01-01T00:{index % 60:02d}:00.000Z GET /health 200" for index in range(200)],
    }
    return ExecutionContext(
        panel_id=panel_id,
        handler_name="checkHealth",
        state=state,
        args={},
        capabilities=["state:read:*", "state:write:*", "ext:http", "events:emit:toast"],
        extensions={"http": ["get"]},
    )


def bench_suspend_resume(quick: bool = False) -> dict[str, Any]:
    """Median suspension plus resume of the monitor check against ``rt.execute`` of the same
    check without its await, and the size of its snapshot.

    ``value`` resumes in the instance the check left (nothing else ran there meanwhile);
    ``hibernated_us`` is the same when another panel ran in between, so the suspension was
    snapshotted, the instance reset, and the snapshot restored into another instance (the
    other panel's own execution time is taken off).
    """
    rounds, per_round = (3, 60) if quick else (8, 250)
    runtime = Runtime(RuntimeConfig(min_instances=1, max_instances=1))
    monitor, other = _monitor_context("monitor"), _counter_context("other")
    reply = {"status": 200}

    def direct() -> None:
        runtime.execute(MONITOR_DIRECT, monitor)

    def waiting() -> None:
        first = runtime.execute(MONITOR_WAITING, monitor)
        suspension = first.suspension
        if suspension is None or runtime.resume(suspension["suspension_id"], value=reply).return_value != "online":
            raise RuntimeError(f"the monitor check did not suspend and resume: {first.error}")

    def hibernated() -> None:
        first = runtime.execute(MONITOR_WAITING, monitor)
        runtime.execute(COUNTER_CODE, other)
        if runtime.resume(first.suspension["suspension_id"], value=reply).return_value != "online":  # type: ignore[index]
            raise RuntimeError("the hibernated monitor check did not resume")

    def other_alone() -> None:
        runtime.execute(MONITOR_DIRECT, monitor)
        runtime.execute(COUNTER_CODE, other)

    try:
        direct()
        waiting()
        hibernated()
        plain: list[float] = []
        suspended: list[float] = []
        moved: list[float] = []
        moved_base: list[float] = []
        for _ in range(rounds):
            plain.append(_median_us(direct, per_round))
            suspended.append(_median_us(waiting, per_round))
            moved.append(_median_us(hibernated, per_round))
            moved_base.append(_median_us(other_alone, per_round))
        first = runtime.execute(MONITOR_WAITING, monitor)
        suspension_id = first.suspension["suspension_id"]  # type: ignore[index]
        record = runtime._suspensions.peek(suspension_id)
        snapshot = record.lodging.take_snapshot() if record is not None else None
        blob = runtime.export_suspension(suspension_id, key=b"bench-key-0123456789")
    finally:
        runtime.close()
    value, baseline = statistics.median(suspended), statistics.median(plain)
    hibernated_us = statistics.median(moved) - statistics.median(moved_base) + baseline
    ratio = value / baseline
    snapshot_kib = len(snapshot.delta) / 1024 if snapshot is not None else 0.0
    return {
        "value": round(value, 2),
        "unit": "us",
        "baseline": round(baseline, 2),
        "ratio": round(ratio, 3),
        "target": SUSPEND_TARGET_RATIO,
        "ok": ratio <= SUSPEND_TARGET_RATIO and snapshot_kib <= SNAPSHOT_TARGET_KIB,
        "hibernated_us": round(hibernated_us, 2),
        "hibernated_ratio": round(hibernated_us / baseline, 3),
        "snapshot_kib": round(snapshot_kib, 1),
        "snapshot_target_kib": SNAPSHOT_TARGET_KIB,
        "snapshot_chunks": len(snapshot.offsets) if snapshot is not None else 0,
        "export_kib": round(len(blob) / 1024, 1),
        "description": "median suspend+resume of the monitor check vs rt.execute of it without the await",
    }


ALL_BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "runtime.execute": bench_execute,
    "runtime.parallel": bench_parallel,
    "runtime.cold_start": bench_cold_start,
    "runtime.instance_memory": bench_instance_memory,
    "runtime.switch": bench_switch,
    "runtime.suspend_resume": bench_suspend_resume,
}
