"""The binding expression language: what parses, what is refused, what is referenced."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workspaces.nxml.bindings import (
    ExpressionError,
    expressions_of,
    is_binding,
    parse_expression,
    split_template,
)


@pytest.mark.parametrize(
    ("text", "state_keys", "scope_names"),
    [
        ("$state.count * 2", ["count"], []),
        ("$state.todos.length", ["todos"], []),
        ("$state['odd key'] + 1", ["odd key"], []),
        ("$state.a?.b ?? 'none'", ["a"], []),
        ("{by: 5}", [], []),
        ("{id: $scope.todo.id, 'x-y': [1, 2,], 3: null,}", [], ["todo"]),
        ("$scope.t.done ? '[x] ' + $scope.t.text : '[ ] ' + $scope.t.text", [], ["t", "t", "t"]),
        ("$state.status === 'online' ? 'success' : 'error'", ["status"], []),
        ("!$state.loading && ($state.n >= 1 || $state.n < -1)", ["loading", "n", "n"], []),
        ('typeof $state.x === "undefined"', ["x"], []),
        ("$state.items[$scope.i].name", ["items"], ["i"]),
        ("-1.5e3 % 7 / 2 - +3", [], []),
        ("0x1F + .5", [], []),
        ("'it\\'s' + \"q\\\"\"", [], []),
        ("a ? b : c".replace("a", "true").replace("b", "1").replace("c", "2"), [], []),
        ("$state", [], []),
    ],
)
def test_valid_expressions(text: str, state_keys: list[str], scope_names: list[str]) -> None:
    expression = parse_expression(text)
    assert expression.state_keys == state_keys
    assert [ref.name for ref in expression.references if ref.root == "$scope"] == scope_names


@pytest.mark.parametrize(
    ("text", "fragment", "offset"),
    [
        ("", "empty", 0),
        ("   ", "empty", 0),
        ("foo", "unknown name 'foo'", 0),
        ("$state.a + window", "unknown name 'window'", 11),
        ("alert(1)", "unknown name", 0),
        ("$state.f(1)", "calls are not allowed", 8),
        ("$state.a = 1", "assignments", 9),
        ("$state.a++", "assignments", 8),
        ("x => 1", "unknown name", 0),
        ("(1) => 1", "functions", 4),
        ("1 +", "end of expression", 3),
        ("'abc", "unterminated", 0),
        ("1 2", "unexpected '2'", 2),
        ("$state.", "property name", 7),
        ("{a 1}", "expected ':'", 3),
        ("[1, 2", "expected ','", 5),
        ("1 # 2", "unexpected character", 2),
        ("`tpl`", "unexpected character", 0),
        ("12abc", "malformed number", 0),
        ("((((" * 20 + "1" + "))))" * 20, "nested deeper", 32),
        ("!" * 100 + "1", "nested deeper", 31),
    ],
)
def test_invalid_expressions(text: str, fragment: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert fragment in caught.value.message
    assert caught.value.offset == offset


def test_templates_split_into_text_and_expressions() -> None:
    parts = split_template("Double: {$state.double} (max {$state.max})")
    assert [(s.text, s.offset, s.is_expression) for s in parts] == [
        ("Double: ", 0, False),
        ("$state.double", 9, True),
        (" (max ", 23, False),
        ("$state.max", 30, True),
        (")", 41, False),
    ]


def test_braces_inside_strings_do_not_end_an_expression() -> None:
    parts = split_template("{'}' + $state.a}")
    assert [s.text for s in parts] == ["'}' + $state.a"]


@pytest.mark.parametrize(
    ("value", "binding"),
    [
        ("{$state.a}", True),
        ("  { {by: 5} }  ", True),
        ("Tasks ({$state.n})", False),
        ("{$state.a}{$state.b}", False),
        ("plain", False),
        ("{unclosed", False),
    ],
)
def test_is_binding(value: str, binding: bool) -> None:
    assert is_binding(value) is binding


def test_expressions_of_reports_every_problem_with_offsets() -> None:
    found = expressions_of("a {$state.x} b {1 +} c {foo}")
    assert [type(item).__name__ for item, _ in found] == ["Expression", "ExpressionError", "ExpressionError"]
    assert [offset for _, offset in found] == [3, 16, 24]
    unclosed = expressions_of("ok {$state.x} then {")
    assert len(unclosed) == 1 and isinstance(unclosed[0][0], ExpressionError)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_expression_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError as error:
        assert 0 <= error.offset <= len(text)
    expressions_of(text)
