"""The server's binding parser and the browser's evaluator agree on the language of bindings.

Every expression the server accepts (workspaces/nxml/bindings.py, at validation) the browser
evaluates (evaluator.js), to the value JavaScript itself gives; what the browser refuses, the
server refuses too, so a panel that validates never shows a binding the page cannot read.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.support import run_evaluator_cases
from workspaces.nxml.bindings import ExpressionError, parse_expression

STATE: dict[str, Any] = {
    "count": 3, "zero": 0, "neg": -2.5, "name": "Ada", "empty": "", "flag": True, "off": False, "nothing": None,
    "items": [1, 2, 3], "user": {"age": 36, "tags": ["a", "b"], "none": None},
}
SCOPE: dict[str, Any] = {"row": {"id": 7, "done": False, "text": "milk"}, "i": 1}

PATHS = [
    "$state.count", "$state.zero", "$state.neg", "$state.name", "$state.empty", "$state.flag", "$state.off",
    "$state.nothing", "$state.items[0]", "$state.items[$scope.i]", "$state.items.length", "$state.user.age",
    "$state.user.tags[1]", "$state['name']", "$state.user?.age", "$state.nothing?.x", "$state.missing?.x.y",
    "$state.user.none?.z", "$scope.row.id", "$scope.row?.done", "$scope.row['text']", "$state.missing", "$state",
    "$scope.row",
]
LITERALS = [
    "0", "1", "2.5", ".5", "1e2", "0x1F", "'a'", '"b"', "'10'", "''", "'\\u0041'", "'\\x42'", "'\\u{43}'", "'\\n'",
    "true", "false", "null", "undefined", "[]", "[1, 'x']", "{}", "{a: 1}", "{'b': $state.count}", "{1: 'one'}",
]
# Constructs on the edge of the language: some are part of it, the others must be refused by both.
EDGES = [
    "$state.count()", "$state.name.length()", "x", "this", "window", "$args", "new Date()", "$state.count = 1",
    "$state.count++", "x => 1", "`t`", "$state.constructor", "$state['__proto__']", "{constructor: 1}",
    "$state?.[0]", "1 & 2", "1 | 2", "2 ** 2", "[1,,2]", "{a}", "'\\u{110000}'", "0x", "1_000", "void 0",
    "'a' in $state", "typeof", "$state.", "(1", "1 ? 2",
]
BINARY = ["+", "-", "*", "/", "%", "===", "!==", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "??"]


def expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(st.sampled_from(PATHS + LITERALS), st.sampled_from(EDGES))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(BINARY), inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda op, a: f"{op}{a}", st.sampled_from(["!", "-", "+", "typeof ", "!!"]), inner),
        st.builds(lambda c, a, b: f"{c} ? {a} : {b}", inner, inner, inner),
        st.builds(lambda a, b: f"[{a}, {b}]", inner, inner),
        st.builds(lambda a: f"{{k: {a}}}", inner),
    ), max_leaves=8)


def server_accepts(source: str) -> bool:
    try:
        parse_expression(source)
    except ExpressionError:
        return False
    return True


def same(left: Any, right: Any) -> bool:
    """Equal as JavaScript values once encoded as JSON (3.0 and 3 are one number; NaN is NaN)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return bool(type(left) is type(right) and left == right)


@settings(max_examples=30, deadline=None)
@given(st.lists(expressions(), min_size=15, max_size=30))
def test_server_and_browser_accept_the_same_bindings_and_the_browser_reads_them_as_javascript(
    sources: list[str],
) -> None:
    cases = [{"op": op, "source": s, "state": STATE, "scope": SCOPE} for s in sources for op in ("eval", "native")]
    report = run_evaluator_cases(cases)
    assert report["prototypeUntouched"] is True
    results = report["results"]
    for index, source in enumerate(sources):
        ours, theirs = results[2 * index], results[2 * index + 1]
        assert "threw" not in ours, (source, ours["threw"])
        accepted = server_accepts(source)
        assert accepted == ours["ok"], (
            f"{source!r}: the server {'accepts' if accepted else 'refuses'} it, the browser "
            f"{'evaluates it' if ours['ok'] else 'refuses it: ' + str(ours.get('error'))}")
        if accepted:
            assert theirs["ok"], f"{source!r} is accepted but JavaScript refuses it: {theirs['error']}"
            assert same(ours["value"], theirs["value"]), (source, ours["value"], theirs["value"])


@pytest.mark.parametrize(("source", "reason"), [
    ("$state.constructor", "'constructor' is not allowed"),
    ("$state.user['__proto__']", "'__proto__' is not allowed"),
    ("{prototype: 1}", "'prototype' is not allowed"),
    ("$state.a || $state.b ?? 1", "without parentheses"),
    ("$state.a ?? $state.b && 1", "without parentheses"),
    ("'\\u{110000}'", "bad escape"),
    ("'\\x4'", "bad escape"),
])
def test_server_refuses_what_the_browser_cannot_read(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(reason)):
        parse_expression(source)


def test_server_reads_escapes_as_javascript_does() -> None:
    assert parse_expression("$state['\\u0061\\x62\\u{63}']").state_keys == ["abc"]
    assert parse_expression("($state.a || $state.b) ?? $state.c").state_keys == ["a", "b", "c"]
