"""Isolation between panels and the limits as clients see them.

Syntax checks run no handler code and touch no panel's instance; an instance that served
one panel is pristine again before another panel's code runs in it; a suspension that is
cancelled ends at once even when the handler left a looping job behind; results, error
texts and time limits are bounded and say what was measured.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import Runtime
from runtime.limits import MAX_ERROR_MESSAGE, MAX_ERROR_STACK, MAX_RESULT_BYTES
from runtime.sandbox import Sandbox

from .conftest import assert_healthy, context, run

ATTACKER_TEXT = "attacker chosen text"
RANDOM_PAIR = "return [Math.random(), Math.random()];"


def breakout(depth: int, statement: str) -> str:
    """A body that closes ``depth`` levels of the wrapper, runs ``statement`` and reopens them."""
    return "}" * depth + f"); {statement}; (function () {{" + "{" * (depth - 1)


# ---------------------------------------------------------------- compiling runs nothing


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_syntax_check_runs_no_code(runtime: Runtime, depth: int) -> None:
    thrown = runtime.check_syntax(breakout(depth, f"throw new SyntaxError('{ATTACKER_TEXT}')"))
    assert thrown is not None and thrown["code"] == "COMPILATION_ERROR"
    assert ATTACKER_TEXT not in thrown["message"]
    looping = runtime.check_syntax(breakout(depth, "for (;;) {}"))
    assert looping is not None and looping["code"] == "COMPILATION_ERROR", looping


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_execution_never_runs_a_breakout(runtime: Runtime, depth: int) -> None:
    result = run(runtime, breakout(depth, "for (;;) {}"), panel_id=f"breakout-{depth}")
    assert result.error is not None and result.error["code"] == "COMPILATION_ERROR", result.error
    assert_healthy(runtime, panel_id=f"breakout-{depth}")


def test_breakout_is_named_and_located(runtime: Runtime) -> None:
    error = runtime.check_syntax("return 1;\n}); let leaked = 1; (function () {")
    assert error is not None and error["message"] == "SyntaxError: the handler closes a block it did not open"
    assert error["location"]["line"] == 2


def test_an_undefined_label_of_the_handler_is_its_own_error(runtime: Runtime) -> None:
    error = runtime.check_syntax("for (;;) { break nowhere; }")
    assert error is not None and "label not found" in error["message"]


def test_labels_and_blocks_of_the_handler_still_work(runtime: Runtime) -> None:
    code = "outer: for (const i of [1, 2, 3]) { { if (i === 2) break outer; } $state.n = i; } return $state.n;"
    assert runtime.check_syntax(code) is None
    assert run(runtime, code, state={"n": 0}).return_value == 1


# ---------------------------------------------------------------- who touches an instance after whom


def _fixed_seed(sandbox: Sandbox) -> list[int] | None:
    if not sandbox.needs_seed:
        return None
    sandbox.needs_seed = False
    return [1, 2, 3, 4]


def test_a_probe_cannot_observe_another_panels_instance(make_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Every pristine instance starts from the same seed, so a continued sequence would show.
    monkeypatch.setattr(Sandbox, "take_seed", _fixed_seed)
    rt = make_runtime(min_instances=1, max_instances=1)
    fresh = rt.execute(RANDOM_PAIR, context(panel_id="victim")).return_value
    continued = rt.execute(RANDOM_PAIR, context(panel_id="victim")).return_value
    assert continued != fresh
    probe = rt.check_syntax(breakout(1, "throw new SyntaxError(String(Math.random()))"))
    assert probe is not None and probe["code"] == "COMPILATION_ERROR"
    assert "0." not in probe["message"]
    assert rt.stats()["total_instances"] == 1, "the syntax check used a pooled instance"
    # The other panel gets the one instance back only after it was reset.
    assert rt.execute(RANDOM_PAIR, context(panel_id="other")).return_value == fresh
    assert rt.execute(RANDOM_PAIR, context(panel_id="victim")).return_value == fresh


def test_computed_and_lifecycle_share_only_their_own_panels_instance(make_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(Sandbox, "take_seed", _fixed_seed)
    rt = make_runtime(min_instances=1, max_instances=1)
    first = rt.execute(RANDOM_PAIR, context(panel_id="a", handler_name="<computed>")).return_value
    assert rt.execute(RANDOM_PAIR, context(panel_id="a", handler_name="mount")).return_value != first
    assert rt.execute(RANDOM_PAIR, context(panel_id="b", handler_name="<computed>")).return_value == first


# ---------------------------------------------------------------- deadlines on their own

LEAVES_A_LOOPING_JOB = """
$state.x = { toJSON() { Promise.resolve().then(() => { for (;;) {} }); return 1; } };
await $ext.http.get('/');
"""


def _within(seconds: float, action: Any) -> bool:
    """Whether ``action()`` returned within ``seconds`` (run on a daemon thread)."""
    done = threading.Event()

    def target() -> None:
        action()
        done.set()

    threading.Thread(target=target, daemon=True).start()
    return done.wait(seconds)


def test_cancel_ends_although_a_looping_job_was_left_behind(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=2, timeout_ms=200)
    started = rt.execute(LEAVES_A_LOOPING_JOB, context(extensions={"http": ["get"]}))
    assert started.status == "suspended", started.error
    assert _within(20, lambda: rt.cancel(started.suspension["suspension_id"])), "cancel did not end"
    assert rt.stats()["suspended"] == 0
    # The instance it was lodged in is reset before its next execution: the job never runs
    # (it would loop past the 200 ms limit of the panel's next handler).
    assert_healthy(rt)
    assert_healthy(rt)


def test_a_looping_job_left_after_the_answer_times_out(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(min_instances=1, max_instances=2, timeout_ms=200)
    code = "$state.x = { toJSON() { Promise.resolve().then(() => { for (;;) {} }); return 1; } }; return 1;"
    result = rt.execute(code, context())
    assert result.error is not None and result.error["code"] == "TIMEOUT"
    assert result.error["message"] == "the handler ran past its limit of 200 ms"
    assert_healthy(rt)


# ---------------------------------------------------------------- sizes as clients receive them

# About 3 MiB of UTF-8 in fewer than a million UTF-16 units; over 5 MiB once escaped.
WIDE_TEXT = "'\\u20ac'.repeat(1000000)"


@pytest.mark.parametrize(
    ("code", "part"),
    [
        (f"return {WIDE_TEXT};", "return value"),
        (f"$state.big = {WIDE_TEXT}; return 1;", "state write"),
        (f"$emit('big', {WIDE_TEXT}); return 1;", "events"),
        (f"$state.big = {WIDE_TEXT}; await $ext.http.get('/');", "state write"),
    ],
)
def test_non_ascii_results_are_measured_as_sent(runtime: Runtime, code: str, part: str) -> None:
    result = run(runtime, code, extensions={"http": ["get"]})
    assert result.error is not None and result.error["code"] == "RESOURCE_LIMIT", result.status
    assert result.error["message"].startswith(f"the {part} of 5.")
    assert result.error["message"].endswith("MiB is over the 1 MiB limit")
    assert result.state_mutations == [] and result.events == []
    assert runtime.stats()["suspended"] == 0
    assert_healthy(runtime)


def test_ascii_results_up_to_the_limit_pass(runtime: Runtime) -> None:
    result = run(runtime, f"return 'x'.repeat({MAX_RESULT_BYTES - 64});")
    assert result.status == "success", result.error
    over = run(runtime, f"return 'x'.repeat({MAX_RESULT_BYTES + 1});")
    assert over.error is not None and over.error["code"] == "RESOURCE_LIMIT"
    assert over.error["message"] == "the result of 1 MiB is over the 1 MiB limit"


@pytest.mark.parametrize(
    "code",
    [
        "throw new Error('m'.repeat(8 * 1024 * 1024));",
        "throw 'm'.repeat(8 * 1024 * 1024);",
        "const e = new Error('short'); e.name = 'N'.repeat(1024 * 1024); throw e;",
        "throw { message: 'm'.repeat(1024 * 1024) };",
    ],
)
def test_error_messages_are_cut_with_a_marker(runtime: Runtime, code: str) -> None:
    error = run(runtime, code).error
    assert error is not None
    assert len(error["message"]) <= MAX_ERROR_MESSAGE
    assert error["message"].endswith("more characters cut]")


def test_error_stacks_are_cut(runtime: Runtime) -> None:
    code = "const name = 'f'.repeat(100000); const o = { [name]() { throw new Error('deep'); } }; o[name]();"
    error = run(runtime, code).error
    assert error is not None and error["code"] == "EXECUTION_ERROR"
    assert len(error.get("stack", "")) <= MAX_ERROR_STACK
