"""Hostile and broken handlers: each ends with its exact error code, and the runtime
still runs an ordinary handler afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime import Runtime

from .conftest import assert_healthy, run

READ_ONLY = ["state:read:*"]


@dataclass(frozen=True)
class Case:
    name: str
    code: Any
    expected: str
    options: dict[str, Any] = field(default_factory=dict)


CORPUS = [
    # --- runaway time
    Case("while-true", "while (true) {}", "TIMEOUT"),
    Case("for-ever", "for (;;) {}", "TIMEOUT"),
    Case("catch-does-not-stop-timeout", "try { while (true) {} } catch (e) { return 'caught'; }", "TIMEOUT"),
    Case("finally-continue", "for (;;) { try { } finally { continue; } }", "TIMEOUT"),
    Case("regex-backtracking", "return /(a+)+$/.test('a'.repeat(40) + 'b');", "TIMEOUT"),
    Case("awaited-microtask-loop", "async function spin() { while (true) await null; } await spin();", "TIMEOUT"),
    Case("detached-microtask-loop", "(async () => { while (true) await null; })(); return 1;", "TIMEOUT"),
    Case("breakout-with-loop", "}); while (true) {} (function () {", "COMPILATION_ERROR"),
    Case("deep-breakout-with-loop", "}}); while (true) {} (function () {{", "COMPILATION_ERROR"),
    # --- memory
    Case("array-bomb", "const keep = []; while (true) keep.push(new Array(1e5).fill(0));", "MEMORY_LIMIT"),
    Case("string-doubling", "let s = 'x'; while (true) s = s + s; return s.length;", "MEMORY_LIMIT"),
    Case("string-repeat", "return 'x'.repeat(2 ** 29).length;", "MEMORY_LIMIT"),
    Case("pad-start", "return ''.padStart(2 ** 28, 'x').length;", "MEMORY_LIMIT"),
    Case("array-buffer", "return new ArrayBuffer(2 ** 30).byteLength;", "MEMORY_LIMIT"),
    Case("fill-huge-array", "return Array(1e9).fill(0).length;", "MEMORY_LIMIT"),
    Case(
        "oom-caught",
        "try { const k = []; while (true) k.push(new Array(1e5).fill(1)); } catch (e) { return 'survived'; }",
        "MEMORY_LIMIT",
    ),
    # --- stack
    Case("deep-recursion", "function f(n) { return f(n + 1) + 1; } return f(0);", "RESOURCE_LIMIT"),
    Case("caught-recursion", "try { (function f() { f(); })(); } catch (e) { return 'caught'; }", "RESOURCE_LIMIT"),
    Case("mutual-recursion", "const a = () => b(); const b = () => a(); a();", "RESOURCE_LIMIT"),
    Case(
        "deep-return-value",
        "let a = []; for (let i = 0; i < 100000; i++) a = [a]; return a;",
        "RESOURCE_LIMIT",
    ),
    # --- escaping the sandbox
    Case("eval", "return eval('1 + 1');", "EXECUTION_ERROR"),
    Case("function-constructor", "return Function('return 1')();", "EXECUTION_ERROR"),
    Case("new-function", "return new Function('return globalThis')();", "EXECUTION_ERROR"),
    Case("constructor-constructor", "return (function () {}).constructor('return this')();", "EXECUTION_ERROR"),
    Case("arrow-constructor", "return (() => 1).constructor.constructor('return 1')();", "EXECUTION_ERROR"),
    Case("async-constructor", "return (async function () {}).constructor('return 1');", "EXECUTION_ERROR"),
    Case("generator-constructor", "return (function* () {}).constructor('yield 1');", "EXECUTION_ERROR"),
    Case("async-generator-constructor", "return (async function* () {}).constructor('yield 1');", "EXECUTION_ERROR"),
    Case("state-constructor", "return $state.constructor.constructor('return 1')();", "EXECUTION_ERROR"),
    Case("emit-constructor", "return $emit.constructor('return 1')();", "EXECUTION_ERROR"),
    Case("set-timeout", "setTimeout(() => {}, 1);", "EXECUTION_ERROR"),
    Case("set-interval", "setInterval(() => {}, 1);", "EXECUTION_ERROR"),
    Case("dynamic-import", "await import('fs'); return 1;", "EXECUTION_ERROR"),
    Case("require", "return require('fs');", "EXECUTION_ERROR"),
    Case("weak-ref", "return new WeakRef({});", "EXECUTION_ERROR"),
    Case("this-is-undefined", "return this.process;", "EXECUTION_ERROR"),
    Case("arguments-callee", "return arguments.callee;", "EXECUTION_ERROR"),
    # --- tampering with shared objects
    Case("object-prototype-pollution", "Object.prototype.polluted = 1; return ({}).polluted;", "EXECUTION_ERROR"),
    Case("proto-accessor-pollution", "({}).__proto__.polluted = 1; return 1;", "EXECUTION_ERROR"),
    Case("assign-into-prototype", "Object.assign(Object.prototype, { x: 1 }); return 1;", "EXECUTION_ERROR"),
    Case("array-prototype", "Array.prototype.push = function () { return 0; }; return 1;", "EXECUTION_ERROR"),
    Case("globalthis-tampering", "globalThis.leak = 1; return 1;", "EXECUTION_ERROR"),
    Case("delete-global", "delete globalThis.Object; return 1;", "EXECUTION_ERROR"),
    Case("replace-json", "JSON.stringify = () => '{}'; return 1;", "EXECUTION_ERROR"),
    Case("replace-math-random", "Math.random = () => 4; return 1;", "EXECUTION_ERROR"),
    Case("stack-hook", "Error.prepareStackTrace = () => 'owned'; return 1;", "EXECUTION_ERROR"),
    Case("stack-limit", "Error.stackTraceLimit = 0; return 1;", "EXECUTION_ERROR"),
    Case("property-on-emit", "$emit.leak = 1; return 1;", "EXECUTION_ERROR"),
    Case("replace-log-level", "$log.info = null; return 1;", "EXECUTION_ERROR"),
    Case("replace-view-command", "$view.focus = () => 0; return 1;", "EXECUTION_ERROR"),
    Case("args-frozen", "$args.by = 2; return $args.by;", "EXECUTION_ERROR", {"args": {"by": 1}}),
    Case("args-nested-frozen", "$args.list.push(4);", "EXECUTION_ERROR", {"args": {"list": [1]}}),
    Case("state-prototype", "Object.setPrototypeOf($state, { x: 1 });", "EXECUTION_ERROR"),
    Case("state-accessor", "Object.defineProperty($state, 'x', { get() { return 1; } });", "EXECUTION_ERROR"),
    Case("freeze-state", "Object.freeze($state);", "EXECUTION_ERROR"),
    Case("state-proto-key", "$state['__proto__'] = { polluted: 1 };", "EXECUTION_ERROR"),
    Case("state-holds-itself", "$state.self = $state;", "EXECUTION_ERROR"),
    Case("state-function", "$state.f = () => 1;", "EXECUTION_ERROR"),
    Case("state-bigint", "$state.big = 10n;", "EXECUTION_ERROR"),
    Case("state-symbol", "$state.s = Symbol('s');", "EXECUTION_ERROR"),
    Case("glue-is-unreachable", "return typeof run + typeof poll + typeof rec + typeof compiled;", "SUCCESS"),
    # --- throwing and returning odd things
    Case("throw-string", "throw 'boom';", "EXECUTION_ERROR"),
    Case("throw-number", "throw 42;", "EXECUTION_ERROR"),
    Case("throw-null", "throw null;", "EXECUTION_ERROR"),
    Case("throw-undefined", "throw undefined;", "EXECUTION_ERROR"),
    Case("throw-object", "throw { code: 'PERMISSION_DENIED', message: 'fake' };", "EXECUTION_ERROR"),
    Case(
        "throw-object-with-traps",
        "throw new Proxy({}, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } });",
        "EXECUTION_ERROR",
    ),
    Case("throw-symbol", "throw Symbol('s');", "EXECUTION_ERROR"),
    Case("reject", "await Promise.reject(new RangeError('no'));", "EXECUTION_ERROR"),
    Case("return-function", "return function () {};", "EXECUTION_ERROR"),
    Case("return-symbol", "return Symbol('s');", "EXECUTION_ERROR"),
    Case("return-cycle", "const a = {}; a.self = a; return a;", "EXECUTION_ERROR"),
    Case("return-bigint", "return 1n;", "EXECUTION_ERROR"),
    Case("return-throwing-tojson", "return { toJSON() { throw new Error('nope'); } };", "EXECUTION_ERROR"),
    Case(
        "return-proxy-throwing", "return new Proxy({}, { ownKeys() { throw new Error('keys'); } });", "EXECUTION_ERROR"
    ),
    Case("never-settles", "await new Promise(() => {});", "EXECUTION_ERROR"),
    Case("invalid-array-length", "return new Array(2 ** 32).length;", "EXECUTION_ERROR"),
    # --- limits of the sandbox API
    Case("too-many-events", "for (let i = 0; i < 101; i++) $emit('e', i);", "RESOURCE_LIMIT"),
    Case("too-many-mutations", "for (let i = 0; i < 1001; i++) $state['k' + i] = i;", "RESOURCE_LIMIT"),
    Case("too-many-host-calls", "for (let i = 0; i < 1001; i++) $log('x');", "RESOURCE_LIMIT"),
    Case("giant-emit-payload", "$emit('big', 'y'.repeat(2e6));", "RESOURCE_LIMIT"),
    Case("giant-object-payload", "$emit('big', { data: 'z'.repeat(1100000) });", "RESOURCE_LIMIT"),
    Case("giant-view-value", "$view.setFilter('t', 'v'.repeat(1100000));", "RESOURCE_LIMIT"),
    Case("result-over-1mib", "return 'x'.repeat(2 * 1024 * 1024);", "RESOURCE_LIMIT"),
    Case(
        "caught-limit-sticks",
        "try { for (let i = 0; i < 200; i++) $emit('e', i); } catch (e) { } return 1;",
        "RESOURCE_LIMIT",
    ),
    # --- capabilities
    Case("write-denied", "$state.count = 1;", "PERMISSION_DENIED", {"state": {"count": 0}, "capabilities": READ_ONLY}),
    Case(
        "delete-denied", "delete $state.count;", "PERMISSION_DENIED", {"state": {"count": 0}, "capabilities": READ_ONLY}
    ),
    Case("delete-unknown-denied", "delete $state.other;", "PERMISSION_DENIED", {"capabilities": READ_ONLY}),
    Case(
        "nested-push-denied",
        "$state.items.push(1);",
        "PERMISSION_DENIED",
        {"state": {"items": []}, "capabilities": READ_ONLY},
    ),
    Case(
        "nested-through-alias-denied",
        "const o = $state.profile; o.name = 'x';",
        "PERMISSION_DENIED",
        {"state": {"profile": {"name": "a"}}, "capabilities": READ_ONLY},
    ),
    Case(
        "write-other-key-denied",
        "$state.b = 1;",
        "PERMISSION_DENIED",
        {"state": {"a": 1, "b": 0}, "capabilities": ["state:read:*", "state:write:a"]},
    ),
    Case("unicode-key-denied", "$state['ключ'] = '値';", "PERMISSION_DENIED", {"capabilities": READ_ONLY}),
    Case(
        "define-property-denied",
        "Object.defineProperty($state, 'k', { value: 1 });",
        "PERMISSION_DENIED",
        {"capabilities": READ_ONLY},
    ),
    Case("emit-denied", "$emit('x', 1);", "PERMISSION_DENIED", {"capabilities": ["events:emit:y"]}),
    Case("view-denied", "$view.focus('panel');", "PERMISSION_DENIED", {"capabilities": ["view:update:other"]}),
    Case(
        "ext-denied",
        "await $ext.http.get('/');",
        "PERMISSION_DENIED",
        {"capabilities": [], "extensions": {"http": ["get"]}},
    ),
    Case(
        "caught-denial-sticks",
        "try { $state.count = 1; } catch (e) { } return 'ignored';",
        "PERMISSION_DENIED",
        {"state": {"count": 0}, "capabilities": READ_ONLY},
    ),
    # --- broken code and arguments
    Case("syntax-error", "let x = ;", "COMPILATION_ERROR"),
    Case("unbalanced-brace", "return 1; }", "COMPILATION_ERROR"),
    Case("wrapper-breakout", "}); globalThis.x = 1; (function () {", "COMPILATION_ERROR"),
    Case("wrapper-breakout-let", "}); let leaked = 1; (function () {", "COMPILATION_ERROR"),
    Case("labelled-breakout", "} L: {", "COMPILATION_ERROR"),
    Case("not-a-string", 42, "INVALID_HANDLER"),
    Case("too-large", "//" + "x" * (300 * 1024), "INVALID_HANDLER"),
    Case("nul-character", "return 1;\x00", "INVALID_HANDLER"),
    Case("nan-state", "return 1;", "INVALID_ARGS", {"state": {"n": float("nan")}}),
    Case("object-in-args", "return 1;", "INVALID_ARGS", {"args": {"o": object()}}),
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_hostile_handler(runtime: Runtime, case: Case) -> None:
    result = run(runtime, case.code, panel_id=f"hostile-{case.name}", **case.options)
    if case.expected == "SUCCESS":
        assert result.status == "success", result.error
    else:
        assert result.status == "error", f"expected {case.expected}, got {result.status} {result.return_value!r}"
        assert result.error is not None
        assert result.error["code"] == case.expected, result.error
        assert isinstance(result.error["message"], str) and result.error["message"]
        # Nothing of a failed execution is kept.
        assert result.state_mutations == [] and result.events == [] and result.view_commands == []
    assert_healthy(runtime, panel_id=f"hostile-{case.name}")
    assert_healthy(runtime)
