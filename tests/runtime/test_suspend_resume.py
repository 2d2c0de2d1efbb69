"""`await $ext.<alias>.<method>(...)`: suspension, resume, expiry and cancellation."""

from __future__ import annotations

import time

import pytest

from runtime import Runtime

from .conftest import assert_healthy, context

HTTP = {"http": ["get", "post"]}


def start(rt: Runtime, code: str, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("extensions", HTTP)
    return rt.execute(code, context(**kwargs))


def test_suspend_and_resume(runtime: Runtime) -> None:
    code = (
        "$state.step = 1; $emit('started', 1); $view.focus('spinner');\n"
        "const reply = await $ext.http.get('/items', {page: 2});\n"
        "$state.step = 2; $state.items = reply.data; return reply.status;"
    )
    first = start(runtime, code, state={"step": 0})
    assert first.status == "suspended", first.error
    suspension = first.suspension
    assert set(suspension) == {"suspension_id", "extension", "method", "args"}
    assert (suspension["extension"], suspension["method"], suspension["args"]) == (
        "http",
        "get",
        ["/items", {"page": 2}],
    )
    # What happened before the suspension comes with it.
    assert first.state_mutations == [{"key": "step", "value": 1, "operation": "set"}]
    assert first.events == [{"name": "started", "payload": 1}]
    assert first.view_commands == [{"type": "focus", "componentId": "spinner", "args": {}}]
    assert runtime.stats()["suspended"] >= 1
    second = runtime.resume(suspension["suspension_id"], ok=True, value={"status": 200, "data": [1, 2]})
    assert second.status == "success", second.error
    assert second.return_value == 200
    assert second.state_mutations == [
        {"key": "step", "value": 2, "operation": "set"},
        {"key": "items", "value": [1, 2], "operation": "set"},
    ]
    assert second.events == [] and second.view_commands == []


def test_failed_call_throws_a_catchable_error(runtime: Runtime) -> None:
    code = "try { await $ext.http.get('/'); } catch (e) { return [e instanceof Error, e.message]; }"
    first = start(runtime, code)
    second = runtime.resume(first.suspension["suspension_id"], ok=False, error="connection refused")
    assert second.return_value == [True, "connection refused"]


def test_uncaught_failed_call(runtime: Runtime) -> None:
    first = start(runtime, "await $ext.http.get('/');\nreturn 1;")
    second = runtime.resume(first.suspension["suspension_id"], ok=False, error="HTTP 500")
    assert second.status == "error"
    assert second.error["code"] == "EXECUTION_ERROR"
    assert "HTTP 500" in second.error["message"]


def test_many_suspensions(runtime: Runtime) -> None:
    code = "let total = 0; for (let i = 0; i < 5; i++) { total += await $ext.http.get('/n/' + i); } return total;"
    result = start(runtime, code)
    seen = []
    while result.status == "suspended":
        seen.append(result.suspension["args"][0])
        result = runtime.resume(result.suspension["suspension_id"], value=len(seen))
    assert seen == ["/n/0", "/n/1", "/n/2", "/n/3", "/n/4"]
    assert result.return_value == 15


def test_parallel_calls_suspend_one_after_the_other(runtime: Runtime) -> None:
    code = "const [a, b] = await Promise.all([$ext.http.get('/a'), $ext.http.post('/b', {x: 1})]); return a + b;"
    first = start(runtime, code)
    assert first.suspension["args"] == ["/a"]
    second = runtime.resume(first.suspension["suspension_id"], value="A")
    assert second.status == "suspended"
    assert (second.suspension["method"], second.suspension["args"]) == ("post", ["/b", {"x": 1}])
    third = runtime.resume(second.suspension["suspension_id"], value="B")
    assert third.return_value == "AB"


def test_state_is_refreshed_at_resume(runtime: Runtime) -> None:
    code = "const before = $state.count; await $ext.http.get('/'); return [before, $state.count, $state.secret];"
    caps = ["state:read:count", "ext:http"]
    first = start(runtime, code, state={"count": 1, "secret": "x"}, capabilities=caps)
    second = runtime.resume(first.suspension["suspension_id"], value=None, state={"count": 7, "secret": "y"})
    assert second.return_value == [1, 7, None]


def test_state_kept_without_refresh(runtime: Runtime) -> None:
    code = "$state.count = 5; const items = $state.items; await $ext.http.get('/'); items.push(3); return $state.count;"
    first = start(runtime, code, state={"count": 0, "items": [1]})
    assert first.state_mutations == [{"key": "count", "value": 5, "operation": "set"}]
    second = runtime.resume(first.suspension["suspension_id"], value=None)
    assert second.return_value == 5
    # The change made through a reference after the resume is committed with the second segment.
    assert second.state_mutations == [{"key": "items", "value": [1, 3], "operation": "set"}]


def test_nested_change_before_suspension_is_committed_with_it(runtime: Runtime) -> None:
    first = start(runtime, "$state.items.push(2); await $ext.http.get('/'); return 1;", state={"items": [1]})
    assert first.state_mutations == [{"key": "items", "value": [1, 2], "operation": "set"}]
    second = runtime.resume(first.suspension["suspension_id"], value=None)
    assert second.state_mutations == []


def test_wrong_double_and_expired_resumes(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=2, suspension_ttl_s=0.3)
    wrong = rt.resume("no-such-id", value=1)
    assert wrong.status == "error" and wrong.error["code"] == "INVALID_ARGS"
    assert rt.resume(None, value=1).error["code"] == "INVALID_ARGS"  # type: ignore[arg-type]
    first = start(rt, "return await $ext.http.get('/');")
    suspension_id = first.suspension["suspension_id"]
    assert rt.resume(suspension_id, value=3).return_value == 3
    double = rt.resume(suspension_id, value=4)
    assert double.error["code"] == "INVALID_ARGS"
    abandoned = start(rt, "return await $ext.http.get('/');")
    # A waiting execution holds no instance.
    assert rt.stats()["suspended"] == 1 and rt.stats()["active_instances"] == 0
    deadline = time.monotonic() + 5
    while rt.stats()["suspended"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = rt.stats()
    assert stats["suspended"] == 0 and stats["active_instances"] == 0, "the expired suspension was not dropped"
    expired = rt.resume(abandoned.suspension["suspension_id"], value=1)
    assert expired.error["code"] == "TIMEOUT"
    assert_healthy(rt)


def test_cancel(runtime: Runtime) -> None:
    first = start(runtime, "await $ext.http.get('/'); return 1;")
    assert runtime.cancel(first.suspension["suspension_id"]) is True
    assert runtime.cancel(first.suspension["suspension_id"]) is False
    assert runtime.resume(first.suspension["suspension_id"], value=1).error["code"] == "INVALID_ARGS"
    assert_healthy(runtime)


def test_undeclared_method(runtime: Runtime) -> None:
    result = start(runtime, "await $ext.http.delete('/');")
    assert result.error["code"] == "EXECUTION_ERROR"
    assert "Extension 'http' has no method 'delete'" in result.error["message"]


def test_undeclared_alias_is_not_found(runtime: Runtime) -> None:
    result = start(
        runtime, "try { await $ext.mail.send('x'); } catch (e) { return e.message; }", capabilities=["ext:*"]
    )
    assert result.status == "success" and result.return_value == "Extension 'mail' not found"


def test_unawaited_call_is_dropped(runtime: Runtime) -> None:
    result = start(runtime, "$ext.http.get('/'); return 'done';")
    assert result.status == "success" and result.return_value == "done"


def test_resume_arguments_are_checked(runtime: Runtime) -> None:
    first = start(runtime, "return await $ext.http.get('/');")
    bad = runtime.resume(first.suspension["suspension_id"], value=object())
    assert bad.error["code"] == "INVALID_ARGS"
    # The suspension survives a bad call and can still be resumed.
    assert runtime.resume(first.suspension["suspension_id"], value={"ok": True}).return_value == {"ok": True}


def test_time_limit_spans_segments(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=1, timeout_ms=400)
    busy = "{ const end = Date.now() + 250; while (Date.now() < end) {} }"
    first = start(rt, busy + "\nawait $ext.http.get('/');\n" + busy + "\nreturn 1;")
    assert first.status == "suspended"
    second = rt.resume(first.suspension["suspension_id"], value=None)
    assert second.error["code"] == "TIMEOUT"
    assert_healthy(rt)


def test_close_drops_suspensions(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime()
    first = start(rt, "await $ext.http.get('/');")
    rt.close()
    with pytest.raises(Exception, match="closed"):
        rt.resume(first.suspension["suspension_id"], value=1)


async def test_aresume(runtime: Runtime) -> None:
    first = await runtime.aexecute("return 1 + await $ext.http.get('/');", context(extensions=HTTP))
    second = await runtime.aresume(first.suspension["suspension_id"], value=41)
    assert second.return_value == 42
