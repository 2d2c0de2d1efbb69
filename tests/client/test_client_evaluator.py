"""The restricted binding-expression evaluator (evaluator.js), run under Node."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.support import STATIC_DIR, run_evaluator_cases

UNDEFINED = {"$undefined": True}
NAN = {"$number": "NaN"}
INFINITY = {"$number": "Infinity"}


@dataclass(frozen=True)
class Refused:
    """The expression must be refused with an error mentioning `reason`."""

    reason: str


STATE: dict[str, Any] = {
    "count": 3,
    "zero": 0,
    "name": "Ada",
    "empty": "",
    "flag": True,
    "off": False,
    "nothing": None,
    "todos": [
        {"id": 1, "text": "milk", "done": True},
        {"id": 2, "text": "eggs", "done": False},
    ],
    "matrix": [[1, 2], [3, 4]],
    "user": {"profile": {"email": "ada@example.org"}, "roles": ["owner"]},
    "weird": {"__proto__": "own", "constructor": "own", "prototype": "own", "a-b": 7, "0": "zero"},
}
SCOPE: dict[str, Any] = {"todo": {"id": 7, "text": "bread", "done": False}, "i": 1}

# (expression, expected); evaluated against STATE and SCOPE.
EXPRESSIONS: list[tuple[str, Any]] = [
    # literals
    ("42", 42),
    ("3.5", 3.5),
    (".5", 0.5),
    ("1e3", 1000),
    ("2.5E-1", 0.25),
    ("'single'", "single"),
    ('"double"', "double"),
    ("'it\\'s'", "it's"),
    ('"a\\nb"', "a\nb"),
    ("'\\u0041\\x42'", "AB"),
    ("''", ""),
    ("true", True),
    ("false", False),
    ("null", None),
    ("undefined", UNDEFINED),
    # paths
    ("$state.count", 3),
    ("$state.name", "Ada"),
    ("$state.user.profile.email", "ada@example.org"),
    ("$state['user']['profile']['email']", "ada@example.org"),
    ('$state["count"]', 3),
    ("$state.todos[1].text", "eggs"),
    ("$state.todos[$scope.i].id", 2),
    ("$state.matrix[1][0]", 3),
    ("$state.todos.length", 2),
    ("$state.name.length", 3),
    ("$state.name[0]", "A"),
    ("$state.weird['a-b']", 7),
    ("$state.weird[0]", "zero"),
    ("$scope.todo.text", "bread"),
    ("$scope.todo.id", 7),
    ("$state.missing", UNDEFINED),
    ("$state.missing.deeper.still", UNDEFINED),
    ("$state.nothing.x", UNDEFINED),
    ("$state.todos[5]", UNDEFINED),
    ("$state.todos[-1]", UNDEFINED),
    ("$state.todos[1.5]", UNDEFINED),
    ("$state.count.x", UNDEFINED),
    ("$scope.other", UNDEFINED),
    # inherited members are not data and read as undefined
    ("$state.toString", UNDEFINED),
    ("$state.todos.map", UNDEFINED),
    ("$state.name.toUpperCase", UNDEFINED),
    ("$state.hasOwnProperty", UNDEFINED),
    ("$state.todos.__defineGetter__", UNDEFINED),
    # arithmetic
    ("$state.count * 2", 6),
    ("$state.count + 1", 4),
    ("$state.count - 5", -2),
    ("7 / 2", 3.5),
    ("7 % 4", 3),
    ("1 / 0", INFINITY),
    ("0 / 0", NAN),
    ("2 + 3 * 4", 14),
    ("(2 + 3) * 4", 20),
    ("10 - 4 - 3", 3),
    ("-$state.count", -3),
    ("- -2", 2),
    ("+'5'", 5),
    ("'Total: ' + $state.count", "Total: 3"),
    ("$state.count + '1'", "31"),
    ("'a' + null", "anull"),
    ("[1, 2] + ''", "1,2"),
    ("$state.user + ''", "[object Object]"),
    ("'x' * 2", NAN),
    # comparison
    ("$state.count === 3", True),
    ("$state.count !== 3", False),
    ("$state.count == '3'", True),
    ("$state.count != '3'", False),
    ("null == undefined", True),
    ("null === undefined", False),
    ("$state.count < 4", True),
    ("$state.count <= 3", True),
    ("$state.count > 3", False),
    ("$state.count >= 3", True),
    ("'b' > 'a'", True),
    ("$state.todos === $state.todos", True),
    ("[1] == [1]", False),
    # logic
    ("$state.flag && $state.count", 3),
    ("$state.off && $state.count", False),
    ("$state.off || 'fallback'", "fallback"),
    ("$state.empty || $state.name", "Ada"),
    ("!$state.flag", False),
    ("!!$state.name", True),
    ("!$state.missing", True),
    ("$state.off || $state.missing.x", UNDEFINED),
    ("$state.zero && $state.missing.x", 0),
    # what the server's binding parser also accepts: ??, ?., typeof, hex numbers, \u{…}
    ("$state.count ?? 1", 3),
    ("$state.nothing ?? 'default'", "default"),
    ("$state.zero ?? 1", 0),
    ("$state.missing ?? $state.nothing ?? 2", 2),
    ("($state.off || $state.nothing) ?? 'x'", "x"),
    ("$state?.count", 3),
    ("$state.missing?.deeper", UNDEFINED),
    ("$state.user?.profile?.email", "ada@example.org"),
    ("typeof $state", "object"),
    ("typeof $state.missing", "undefined"),
    ("typeof $state.count + 1", "number1"),
    ("typeof typeof 1", "string"),
    ("0x1F", 31),
    ("'\\u{41}\\u{1F600}'", "A\U0001F600"),
    # conditional
    ("$state.flag ? 'yes' : 'no'", "yes"),
    ("$state.off ? 'yes' : 'no'", "no"),
    ("$state.count > 5 ? 'big' : $state.count > 2 ? 'medium' : 'small'", "medium"),
    ("$scope.todo.done ? '[x] ' + $scope.todo.text : '[ ] ' + $scope.todo.text", "[ ] bread"),
    ("$state.status === 'online' ? 'success' : 'error'", "error"),
    ("$state.count?.5:1", 0.5),
    # object and array literals
    ("{by: 5}", {"by": 5}),
    ("{id: $scope.todo.id}", {"id": 7}),
    ("{'quoted key': 1, \"dq\": 2, 3: 'three'}", {"quoted key": 1, "dq": 2, "3": "three"}),
    ("{a: {b: [1, {c: $state.name}]}}", {"a": {"b": [1, {"c": "Ada"}]}}),
    ("{a: 1,}", {"a": 1}),
    ("{}", {}),
    ("[]", []),
    ("[1, 'two', $state.flag, null]", [1, "two", True, None]),
    ("[1, 2,]", [1, 2]),
    ("{n: undefined}", {"n": UNDEFINED}),
    ("{value: $state.count * 2, label: 'x' + $state.count}", {"value": 6, "label": "x3"}),
    ("[$state.todos[0].text, $state.todos[1].text][1]", "eggs"),
    ("{a: 1}.a", 1),
    ("  $state.count  ", 3),
    ("$state\n.count", 3),
    # refusals: calls
    ("alert(1)", Refused("unknown name")),
    ("$state.todos.map(x)", Refused("function calls are not allowed")),
    ("$state.name.toUpperCase()", Refused("function calls are not allowed")),
    ("$state.count()", Refused("function calls are not allowed")),
    ("($state.count)()", Refused("function calls are not allowed")),
    ("$state['constructor']['constructor']('return this')()", Refused("not allowed")),
    # refusals: globals and other names
    ("window", Refused("unknown name")),
    ("globalThis", Refused("unknown name")),
    ("this", Refused("unknown name")),
    ("self.location", Refused("unknown name")),
    ("document.cookie", Refused("unknown name")),
    ("process.env", Refused("unknown name")),
    ("require('fs')", Refused("unknown name")),
    ("Object", Refused("unknown name")),
    ("Function", Refused("unknown name")),
    ("eval", Refused("unknown name")),
    ("$args.x", Refused("unknown name")),
    ("state.count", Refused("unknown name")),
    ("new Date()", Refused("unknown name")),
    ("x => 1", Refused("not allowed")),
    ("{a}", Refused("expected")),
    # refusals: prototype chain
    ("$state.constructor", Refused("constructor")),
    ("$state.__proto__", Refused("__proto__")),
    ("$state.todos.constructor", Refused("constructor")),
    ("$state.name.constructor", Refused("constructor")),
    ("$state['__proto__']", Refused("__proto__")),
    ("$state['__pro' + 'to__']", Refused("__proto__")),
    ("$state['constr' + 'uctor']", Refused("constructor")),
    ("$state.weird.__proto__", Refused("__proto__")),
    ("$state.weird.constructor", Refused("constructor")),
    ("$state.weird.prototype", Refused("prototype")),
    ("$scope.todo['prototype']", Refused("prototype")),
    ("{__proto__: {polluted: 1}}", Refused("__proto__")),
    ("{'__proto__': 1}", Refused("__proto__")),
    ("{constructor: 1}", Refused("constructor")),
    # refusals: assignment and side effects
    ("$state.count = 5", Refused("assignment")),
    ("$state.count += 1", Refused("assignment")),
    ("$state.count++", Refused("increment")),
    ("--$state.count", Refused("decrement")),
    ("$state.a = 1, 2", Refused("assignment")),
    ("delete $state.count", Refused("unknown name")),
    # refusals: syntax outside the language
    ("`${1}`", Refused("template literals")),
    ("1; 2", Refused("unexpected")),
    ("1, 2", Refused("unexpected")),
    ("$state.flag || $state.count ?? 1", Refused("without parentheses")),
    ("$state.count ?? $state.flag && 1", Refused("without parentheses")),
    ("$state?.[0]", Refused("property name")),
    ("'\\u{110000}'", Refused("bad escape")),
    ("1 & 2", Refused("unexpected")),
    ("1 | 2", Refused("unexpected")),
    ("a.b", Refused("unknown name")),
    ("$state.", Refused("property name")),
    ("$state[", Refused("unexpected")),
    ("(1", Refused("expected")),
    ("1 +", Refused("unexpected")),
    ("'open", Refused("unterminated")),
    ("[1,,2]", Refused("empty array slot")),
    ("1 ? 2", Refused("expected")),
    ("", Refused("empty")),
    ("   ", Refused("empty")),
    ("12abc", Refused("malformed number")),
    ("#", Refused("unexpected character")),
    ("(" * 200 + "1" + ")" * 200, Refused("nested too deeply")),
    ("!" * 500 + "1", Refused("nested too deeply")),
    ("1 + " * 1500 + "1", Refused("longer than")),
]

# (raw attribute value, expected resolved value)
RESOLVED: list[tuple[str, Any]] = [
    ("{$state.count}", 3),
    ("{ $state.flag }", True),
    ("{$state.todos}", STATE["todos"]),
    ("{ {by: 5} }", {"by": 5}),
    ("{ {id: $scope.todo.id} }", {"id": 7}),
    ("Double: {$state.count * 2}", "Double: 6"),
    ("Tasks ({$state.todos.length})", "Tasks (2)"),
    ("{$state.name} has {$state.count} items", "Ada has 3 items"),
    ("Missing: [{$state.missing}]", "Missing: []"),
    ("Refused: [{window.x}]", "Refused: []"),
    ("Object: {$state.user.roles}", 'Object: ["owner"]'),
    ("Brace in a string: {'}'}", "Brace in a string: }"),
    ("It's {$state.name}'s", "It's Ada's"),
    ("200", "200"),
    ("plain text", "plain text"),
    ("unclosed {brace", "unclosed {brace"),
    ("{$state.count} and {unclosed", "3 and {unclosed"),
    ("", ""),
    ("{window}", ""),
    ("{$state.missing}", UNDEFINED),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
]

BINDINGS: list[tuple[str, bool]] = [
    ("{$state.count}", True),
    ("  {$state.count}  ", True),
    ("{ {by: 5} }", True),
    ("Double: {$state.count}", False),
    ("{$state.a} {$state.b}", False),
    ("$state.count", False),
    ("200", False),
]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for source, _ in EXPRESSIONS:
        cases.append({"op": "eval", "source": source, "state": STATE, "scope": SCOPE})
    for source, _ in RESOLVED:
        cases.append({"op": "resolve", "source": source, "state": STATE, "scope": SCOPE})
    for source, _ in BINDINGS:
        cases.append({"op": "isBinding", "source": source, "state": STATE, "scope": SCOPE})
    return run_evaluator_cases(cases)


def _ids(table: list[tuple[str, Any]]) -> list[str]:
    return [source if len(source) < 60 else source[:57] + "..." for source, _ in table]


@pytest.mark.parametrize(("index", "source", "expected"), [(i, s, e) for i, (s, e) in enumerate(EXPRESSIONS)],
                         ids=_ids(EXPRESSIONS))
def test_expression(report: dict[str, Any], index: int, source: str, expected: Any) -> None:
    result = report["results"][index]
    assert "threw" not in result, f"evaluator threw: {result.get('threw')}"
    if isinstance(expected, Refused):
        assert result["ok"] is False, f"{source!r} should be refused, got {result.get('value')!r}"
        assert expected.reason in result["error"], result["error"]
        assert result["fallback"] == "", "a refused expression must fall back to an empty string"
    else:
        assert result["ok"] is True, f"{source!r} failed: {result.get('error')}"
        assert result["value"] == expected


@pytest.mark.parametrize(("index", "raw", "expected"), [(i, s, e) for i, (s, e) in enumerate(RESOLVED)],
                         ids=_ids(RESOLVED))
def test_resolve_attribute(report: dict[str, Any], index: int, raw: str, expected: Any) -> None:
    result = report["results"][len(EXPRESSIONS) + index]
    assert "threw" not in result, result.get("threw")
    assert result["value"] == expected


@pytest.mark.parametrize(("index", "raw", "expected"), [(i, s, e) for i, (s, e) in enumerate(BINDINGS)],
                         ids=_ids(BINDINGS))
def test_is_binding(report: dict[str, Any], index: int, raw: str, expected: bool) -> None:
    result = report["results"][len(EXPRESSIONS) + len(RESOLVED) + index]
    assert result["value"] is expected


def test_evaluation_leaves_object_prototype_alone(report: dict[str, Any]) -> None:
    assert report["prototypeUntouched"] is True


def test_public_api_names(report: dict[str, Any]) -> None:
    for name in ("evaluate", "tryEvaluate", "resolve", "renderTemplate", "isBinding", "toText", "compile"):
        assert name in report["exportedNames"]


def test_object_literal_result_has_no_inherited_surprises() -> None:
    cases = [
        {"op": "eval", "source": "{a: 1}.toString", "state": {}, "scope": {}},
        {"op": "eval", "source": "{a: 1}.hasOwnProperty", "state": {}, "scope": {}},
        {"op": "eval", "source": "$state", "state": {"k": [1]}, "scope": {}},
        {"op": "eval", "source": "$scope", "state": {}, "scope": {"x": 1}},
        {"op": "eval", "source": "$state.count", "state": None, "scope": None},
    ]
    results = run_evaluator_cases(cases)["results"]
    assert results[0]["value"] == UNDEFINED
    assert results[1]["value"] == UNDEFINED
    assert results[2]["value"] == {"k": [1]}
    assert results[3]["value"] == {"x": 1}
    assert results[4] == {"ok": True, "value": UNDEFINED, "fallback": UNDEFINED}


TOKENS = st.sampled_from([
    "$state", "$scope", ".", "[", "]", "(", ")", "{", "}", ",", ":", "?", "!", "-", "+", "*", "/", "%",
    "===", "==", "!=", "<", ">=", "&&", "||", "=", "'s'", '"d"', "1", "2.5", "count", "todos", "constructor",
    "__proto__", "window", "this", "`", ";", "=>", " ", "\\", "'", "true", "null", "{a: 1}", "[1,2]",
])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(TOKENS, min_size=1, max_size=14).map("".join), min_size=20, max_size=20))
def test_evaluator_never_throws_on_garbage(sources: list[str]) -> None:
    cases = []
    for source in sources:
        cases.append({"op": "eval", "source": source, "state": STATE, "scope": SCOPE})
        cases.append({"op": "template", "source": "x {" + source + "} y", "state": STATE, "scope": SCOPE})
    report = run_evaluator_cases(cases)
    assert report["prototypeUntouched"] is True
    for source, result in zip([s for s in sources for _ in (0, 1)], report["results"], strict=True):
        assert "threw" not in result, f"{source!r}: {result['threw']}"


FORBIDDEN_IN_SOURCES = [
    r"\beval\s*\(",
    r"new\s+Function\b",
    r"\bFunction\s*\(",
    r"\.innerHTML\b",
    r"\.outerHTML\b",
    r"insertAdjacentHTML",
    r"document\.write",
    r"setTimeout\s*\(\s*['\"]",
    r"setInterval\s*\(\s*['\"]",
    r"createContextualFragment",
    r"DOMParser",
]


@pytest.mark.parametrize("filename", ["evaluator.js", "panel.js"])
def test_client_sources_never_evaluate_code_or_parse_html(filename: str) -> None:
    text = (STATIC_DIR / filename).read_text()
    for pattern in FORBIDDEN_IN_SOURCES:
        assert not re.search(pattern, text), f"{filename} matches forbidden pattern {pattern}"
