"""Suspended executions hold no instance: hibernation, export and import, caps, deadlines."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import CodedError, ErrorCode, Runtime, hibernation

from .conftest import assert_healthy, context

HTTP = {"http": ["get", "post"]}
KEY = b"k" * 32
ROOT = Path(__file__).resolve().parents[2]
# Own state, own arguments, own closure: each resume must see exactly its own.
WAITER = (
    "const mine = $args.n * 10; $state.seen = $args.n;\n"
    "const reply = await $ext.http.get('/item/' + $args.n);\n"
    "return [mine, $args.n, reply, $state.seen];"
)


def start(rt: Runtime, code: str, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("extensions", HTTP)
    return rt.execute(code, context(**kwargs))


@pytest.mark.slow
def test_two_hundred_wait_on_two_instances(make_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    restored = []
    real_restore = hibernation.restore
    monkeypatch.setattr(hibernation, "restore", lambda *args: restored.append(1) or real_restore(*args))
    rt = make_runtime(max_instances=2, acquire_timeout_ms=500)
    waiting = {}
    for n in range(200):
        result = start(rt, WAITER, args={"n": n}, state={"seen": None}, panel_id=f"panel-{n % 7}")
        assert result.status == "suspended", result.error
        assert result.state_mutations == [{"key": "seen", "value": n, "operation": "set"}]
        waiting[n] = result.suspension["suspension_id"]
    stats = rt.stats()
    assert stats["suspended"] == 200
    assert stats["active_instances"] == 0
    assert_healthy(rt, panel_id="unrelated")  # an instance is free at once (the wait is 500 ms at most)
    order = list(waiting)
    random.Random(17).shuffle(order)
    for n in order:
        done = rt.resume(waiting[n], value=f"reply-{n}")
        assert done.status == "success", (n, done.error)
        assert done.return_value == [n * 10, n, f"reply-{n}", n]
    assert rt.stats()["suspended"] == 0 and rt.stats()["active_instances"] == 0
    # All but the (at most two) still lodged in an instance came back from a snapshot.
    assert len(restored) >= 198
    assert_healthy(rt)


def test_resumed_in_another_instance_sees_nothing_of_what_ran_there(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(max_instances=1)
    code = "const secret = $args.s; const r = await $ext.http.get('/'); return [secret, r];"
    first = start(rt, code, args={"s": "mine"}, panel_id="a")
    # Another panel runs in the only instance: the suspension moves out, the instance is pristine.
    other = start(rt, "return [typeof secret, Object.keys(globalThis).length];", panel_id="b")
    fresh = start(rt, "return [typeof secret, Object.keys(globalThis).length];", panel_id="c")
    assert other.status == "success" and other.return_value == fresh.return_value
    assert other.return_value[0] == "undefined"
    again = rt.resume(first.suspension["suspension_id"], value=5)
    assert again.return_value == ["mine", 5]
    assert_healthy(rt, panel_id="b")


def test_cancel_and_deadline_of_hibernated_suspensions(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(max_instances=1)
    lodged = start(rt, "await $ext.http.get('/'); return 1;")
    moved = start(rt, "await $ext.http.get('/'); return 2;", panel_id="other")  # the first one is snapshotted
    assert rt.cancel(lodged.suspension["suspension_id"]) is True
    assert rt.cancel(moved.suspension["suspension_id"]) is True
    assert rt.stats()["suspended"] == 0
    assert_healthy(rt)
    short = start(rt, "return await $ext.http.get('/');")
    assert rt.set_suspension_deadline(short.suspension["suspension_id"], 0.2) is True
    assert rt.set_suspension_deadline("no-such-id", 1) is False
    deadline = time.monotonic() + 5
    while rt.stats()["suspended"] and time.monotonic() < deadline:
        time.sleep(0.05)
    late = rt.resume(short.suspension["suspension_id"], value=1)
    assert late.status == "error" and late.error["code"] == "TIMEOUT"
    assert_healthy(rt)


def test_failed_call_carries_its_code(runtime: Runtime) -> None:
    code = "try { await $ext.http.get('/'); } catch (e) { return [e.code, e.message]; } finally { $state.done = true; }"
    first = start(runtime, code)
    second = runtime.resume(first.suspension["suspension_id"], ok=False, error="process lost", error_code="INTERRUPTED")
    assert second.return_value == ["INTERRUPTED", "process lost"]
    assert second.state_mutations == [{"key": "done", "value": True, "operation": "set"}]


def test_cap_throws_a_catchable_resource_limit(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(max_suspended=2)
    held = [start(rt, "return await $ext.http.get('/');") for _ in range(2)]
    assert all(result.status == "suspended" for result in held)
    code = (
        "$state.before = 1;\n"
        "try { await $ext.http.get('/'); } catch (e) { $state.after = e.code; return [e instanceof Error, e.code]; }"
    )
    refused = start(rt, code)
    assert refused.status == "success", refused.error
    assert refused.return_value == [True, "RESOURCE_LIMIT"]
    assert refused.state_mutations == [
        {"key": "before", "value": 1, "operation": "set"},
        {"key": "after", "value": "RESOURCE_LIMIT", "operation": "set"},
    ]
    uncaught = start(rt, "await $ext.http.get('/'); return 1;")
    assert uncaught.status == "error" and uncaught.error["code"] == "EXECUTION_ERROR"
    assert rt.stats()["suspended"] == 2
    for result in held:
        assert rt.resume(result.suspension["suspension_id"], value=3).return_value == 3
    assert start(rt, "return await $ext.http.get('/');").status == "suspended"


def test_export_keep_and_import_here(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(suspension_key=KEY)
    first = start(rt, WAITER, args={"n": 4}, state={"seen": None})
    suspension_id = first.suspension["suspension_id"]
    kept = rt.export_suspension(suspension_id, keep=True)
    assert rt.stats()["suspended"] == 1
    copy_id = rt.import_suspension(kept)
    assert rt.resume(suspension_id, value="a").return_value == [40, 4, "a", 4]
    assert rt.resume(copy_id, value="b").return_value == [40, 4, "b", 4]
    blob = rt.export_suspension(start(rt, WAITER, args={"n": 5}).suspension["suspension_id"])
    assert rt.stats()["suspended"] == 0  # exported without keep: it left this runtime
    with pytest.raises(CodedError) as missing:
        rt.export_suspension("no-such-id")
    assert missing.value.code == ErrorCode.INVALID_ARGS
    assert rt.resume(rt.import_suspension(blob), value="c").return_value == [50, 5, "c", 5]


_EXPORTER = """
import json, sys
from runtime import ExecutionContext, Runtime, RuntimeConfig
rt = Runtime(RuntimeConfig(min_instances=1, max_instances=1, cache_dir=sys.argv[1], suspension_key=b"k" * 32))
ctx = ExecutionContext(panel_id="far", handler_name="wait", state={"seen": None}, args={"n": 9},
                       capabilities=["state:read:*", "state:write:*", "ext:http"], extensions={"http": ["get"]})
result = rt.execute(sys.argv[3], ctx)
assert result.status == "suspended", result.error
open(sys.argv[2], "wb").write(rt.export_suspension(result.suspension["suspension_id"]))
print(json.dumps(result.suspension))
rt.close()
"""


@pytest.mark.slow
def test_export_in_one_process_resume_in_another(make_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob_path = tmp_path / "suspension.bin"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # A cache directory of its own: the other process builds its own guest image.
    args = [sys.executable, "-c", _EXPORTER, str(tmp_path / "cache"), str(blob_path), WAITER]
    child = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    pending = json.loads(child.stdout.strip().splitlines()[-1])
    assert (pending["extension"], pending["method"], pending["args"]) == ("http", "get", ["/item/9"])
    rt = make_runtime(suspension_key=KEY)
    blob = blob_path.read_bytes()
    resumed = rt.resume(rt.import_suspension(blob), value={"status": 200})
    assert resumed.status == "success", resumed.error
    assert resumed.return_value == [90, 9, {"status": 200}, 9]


def test_bad_blobs_are_refused_and_nothing_runs(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(suspension_key=KEY)
    blob = rt.export_suspension(start(rt, WAITER, args={"n": 1}).suspension["suspension_id"])
    executions = rt.stats()["executions"]
    middle = len(blob) // 2
    tampered = blob[:middle] + bytes([blob[middle] ^ 1]) + blob[middle + 1 :]
    other = make_runtime(suspension_key=KEY)
    other.guest_build = hashlib.sha256(b"another guest build").digest()
    cases = {
        "tampered": lambda: rt.import_suspension(tampered),
        "truncated": lambda: rt.import_suspension(blob[:-40]),
        "short": lambda: rt.import_suspension(blob[:10]),
        "garbage": lambda: rt.import_suspension(b"\x00" * 400),
        "not bytes": lambda: rt.import_suspension("text"),  # type: ignore[arg-type]
        "wrong key": lambda: rt.import_suspension(blob, key=b"x" * 32),
        "wrong build": lambda: other.import_suspension(blob),
    }
    for name, attempt in cases.items():
        with pytest.raises(CodedError) as refused:
            attempt()
        assert refused.value.code == ErrorCode.INVALID_ARGS, name
    with pytest.raises(CodedError, match="another guest build"):
        other.import_suspension(blob)
    assert rt.stats()["suspended"] == 0 and other.stats()["suspended"] == 0
    assert rt.stats()["executions"] == executions
    # The intact blob still works.
    assert rt.resume(rt.import_suspension(blob), value="ok").return_value == [10, 1, "ok", 1]


@pytest.mark.slow
def test_threads_suspend_and_resume_across_two_instances(make_runtime) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    rt = make_runtime(max_instances=2, acquire_timeout_ms=10_000)

    def worker(index: int) -> list[object]:
        outcomes = []
        for round_ in range(15):
            n = index * 100 + round_
            first = start(rt, WAITER, args={"n": n}, state={"seen": None}, panel_id=f"panel-{n % 5}")
            second = start(rt, "return $args.k * 2;", args={"k": n}, panel_id=f"busy-{index}")
            done = rt.resume(first.suspension["suspension_id"], value=n)
            outcomes.append((done.return_value == [n * 10, n, n, n], second.return_value == n * 2))
        return outcomes

    with ThreadPoolExecutor(4) as threads:
        results = [outcome for batch in threads.map(worker, range(4)) for outcome in batch]
    assert results == [(True, True)] * 60
    assert rt.stats()["suspended"] == 0 and rt.stats()["active_instances"] == 0
    assert_healthy(rt)


def test_an_instance_the_state_left_while_idle_is_reset_before_its_next_use(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=2, max_instances=2)
    first = start(rt, WAITER, args={"n": 3}, state={"seen": None})
    holder = rt._pool.acquire("panel-1", 1)  # the instance the suspension is lodged in
    assert holder.lodger is not None
    # Resumed in the other instance: the state is copied out of the one held here.
    assert rt.resume(first.suspension["suspension_id"], value="r").return_value == [30, 3, "r", 3]
    rt._pool.release(holder)
    # The next execution of the panel gets that instance back, reset first.
    again = start(rt, WAITER, args={"n": 4}, state={"seen": None})
    assert again.status == "suspended", again.error
    assert rt.resume(again.suspension["suspension_id"], value="s").return_value == [40, 4, "s", 4]
    assert_healthy(rt)


def test_an_exported_suspension_keeps_the_time_it_used(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(max_instances=1, timeout_ms=400, suspension_key=KEY)
    busy = "{ const end = Date.now() + 250; while (Date.now() < end) {} }"
    first = start(rt, busy + "\nawait $ext.http.get('/');\n" + busy + "\nreturn 1;")
    assert first.status == "suspended", first.error
    moved = rt.import_suspension(rt.export_suspension(first.suspension["suspension_id"]))
    second = rt.resume(moved, value=None)
    assert second.status == "error" and second.error["code"] == "TIMEOUT"
    assert_healthy(rt)
