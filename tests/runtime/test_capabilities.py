"""Capability tokens: parsing, matching and inference from handler code."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.capabilities import (
    Capability,
    CapabilitySet,
    capability_from_declaration,
    infer_capabilities,
    parse_capability,
)

# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("token", "kind", "scope"),
    [
        ("state:read:count", "state:read", "count"),
        ("state:write:*", "state:write", "*"),
        ("state:write:user.*", "state:write", "user.*"),
        ("events:emit:changed", "events:emit", "changed"),
        ("events:emit:item:added", "events:emit", "item:added"),
        ("view:update:log", "view:update", "log"),
        ("ext:http", "ext", "http"),
        ("ext:*", "ext", "*"),
        ("  state:read:count  ", "state:read", "count"),
    ],
)
def test_parse_valid_tokens(token: str, kind: str, scope: str) -> None:
    capability = parse_capability(token)
    assert capability == Capability(kind, scope)
    assert capability.token == f"{kind}:{scope}"


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("", "empty"),
        ("state:read:", "no scope"),
        ("state:read", "unknown capability"),
        ("state:delete:x", "unknown capability"),
        ("state:write:a*b", "prefix"),
        ("state:write:a b", "scope"),
        ("state:read:a:b", "scope"),
        ("ext:", "no scope"),
        ("ext:my-ext", "extension alias"),
        ("ext:http.get", "extension alias"),
        ("view:update:**", "scope"),
        ("network:connect:*", "unknown capability"),
        ("state:read:" + "k" * 300, "longer than"),
    ],
)
def test_parse_rejects_bad_tokens_with_a_clear_message(token: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_capability(token)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_capability(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_", "scope", "token"),
    [
        ("state:write", "count", "state:write:count"),
        ("state:read", "*", "state:read:*"),
        ("events:emit", "toast", "events:emit:toast"),
        ("view:update", "log", "view:update:log"),
        ("ext:http", "*", "ext:http"),
        ("ext:http", None, "ext:http"),
        ("ext:http", "", "ext:http"),
        ("ext", "http", "ext:http"),
        ("state:write:count", None, "state:write:count"),
        (" state:write ", " count ", "state:write:count"),
    ],
)
def test_declarations_normalise_to_tokens(type_: str, scope: str | None, token: str) -> None:
    assert capability_from_declaration(type_, scope) == token


@pytest.mark.parametrize(
    ("type_", "scope", "fragment"),
    [
        ("state:write", None, "needs a scope"),
        ("state:write", "", "needs a scope"),
        ("ext", None, "alias"),
        ("ext:http", "get", "every method"),
        ("state:fly", "x", "unknown capability type"),
        ("", "x", "empty"),
        ("state:write", "bad key", "scope"),
    ],
)
def test_bad_declarations_raise(type_: str, scope: str | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        capability_from_declaration(type_, scope)


# ----------------------------------------------------------------------------- matching


def test_exact_scopes_match_only_their_name() -> None:
    caps = CapabilitySet(["state:read:count", "events:emit:changed", "view:update:log", "ext:http"])
    assert caps.can_read("count") and not caps.can_read("counter")
    assert not caps.can_write("count")
    assert caps.can_emit("changed") and not caps.can_emit("toast")
    assert caps.can_update_view("log") and not caps.can_update_view("logs")
    assert caps.can_use_ext("http") and not caps.can_use_ext("db")


def test_write_implies_read() -> None:
    caps = CapabilitySet(["state:write:count"])
    assert caps.can_write("count") and caps.can_read("count")
    assert not caps.can_read("other")
    assert caps.allows("state:read:count")


def test_wildcards_and_prefixes() -> None:
    caps = CapabilitySet(["state:read:*", "state:write:user.*", "events:emit:*", "ext:*"])
    assert caps.can_read("anything") and caps.can_read("")
    assert caps.can_write("user.name") and caps.can_write("user.")
    assert not caps.can_write("user") and not caps.can_write("username")
    assert caps.can_emit("whatever") and caps.can_use_ext("db")
    assert not caps.can_update_view("log")


def test_prefix_without_dot() -> None:
    caps = CapabilitySet(["view:update:chart*"])
    assert caps.can_update_view("chart") and caps.can_update_view("chart-2")
    assert not caps.can_update_view("log")


def test_empty_set_grants_nothing() -> None:
    caps = CapabilitySet([])
    assert caps.tokens == []
    assert not any(
        [caps.can_read("a"), caps.can_write("a"), caps.can_emit("a"), caps.can_update_view("a"), caps.can_use_ext("a")]
    )


def test_tokens_are_normalised_and_deduplicated() -> None:
    caps = CapabilitySet([" state:read:a ", "state:read:a", "ext:http"])
    assert caps.tokens == ["state:read:a", "ext:http"]
    assert list(caps) == caps.tokens and len(caps) == 2


def test_invalid_token_in_a_set_raises() -> None:
    with pytest.raises(ValueError, match="unknown capability"):
        CapabilitySet(["state:read:a", "root:everything"])


def test_non_string_names_are_never_granted() -> None:
    caps = CapabilitySet(["state:read:*"])
    assert not caps.can_read(None)  # type: ignore[arg-type]


def test_allows_checks_concrete_tokens() -> None:
    caps = CapabilitySet(["state:write:*", "events:emit:toast"])
    assert caps.allows("state:write:x") and caps.allows("events:emit:toast")
    assert not caps.allows("events:emit:other") and not caps.allows("garbage")


# ----------------------------------------------------------------------------- inference

TODO_TOGGLE = """
const t = $state.todos.find(t => t.id === $args.id);
if (!t) throw new Error('No todo ' + $args.id);
t.done = !t.done;
"""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("$state.count = 0;", ["state:write:count"]),
        ("return $state.count;", ["state:read:count"]),
        (
            "$state.count = $state.count + $args.by; $emit('changed', $state.count); return $state.count;",
            ["events:emit:changed", "state:read:count", "state:write:count"],
        ),
        ("$state.count += 1;", ["state:read:count", "state:write:count"]),
        ("$state.count++;", ["state:read:count", "state:write:count"]),
        ("--$state.count;", ["state:read:count", "state:write:count"]),
        ("delete $state.tmp;", ["state:write:tmp"]),
        ("$state.user.name = 'x';", ["state:read:user", "state:write:user"]),
        ("$state.items[0] = 1;", ["state:read:items", "state:write:items"]),
        ("$state['quoted'] = 1;", ["state:write:quoted"]),
        ("$state.items.push(1);", ["state:read:items", "state:write:items"]),
        ("$state.a.b.c.sort();", ["state:read:a", "state:write:a"]),
        (TODO_TOGGLE, ["state:read:todos", "state:write:todos"]),
        ("const list = $state.items; list.push(1);", ["state:read:items", "state:write:items"]),
        (
            "let x = $state.flag ? $state.a : $state.b;",
            ["state:read:a", "state:read:b", "state:read:flag", "state:write:a", "state:write:b"],
        ),
        ("for (const t of $state.todos) t.done = true;", ["state:read:todos", "state:write:todos"]),
        ("const { a } = $state.obj;", ["state:read:obj", "state:write:obj"]),
        ("[$state.a, $state.b] = [1, 2];", ["state:write:a", "state:write:b"]),
        ("Object.assign($state.cfg, { x: 1 });", ["state:read:cfg", "state:write:cfg"]),
        ("$emit('saved', $state.doc);", ["events:emit:saved", "state:read:doc"]),
        ("$log('v', $state.doc);", ["state:read:doc"]),
        ("$emit(`tick`);", ["events:emit:tick"]),
        ("$view.focus('input');", ["view:update:input"]),
        ("$view.setFilter('log', 'x'); $view.scrollTo('log', 'end');", ["view:update:log"]),
        ("const r = await $ext.http.get('/health');", ["ext:http"]),
        ("await $ext['db'].query('x');", ["ext:db"]),
        ("if ($state?.ready) {}", ["state:read:ready"]),
        # dynamic names and whole-state aliases grant nothing
        ("$state[key] = 1;", []),
        ("$emit(name, 1);", []),
        ("$emit('a' + b);", []),
        ("$view.focus(id);", []),
        ("const s = $state; s.count = 1;", []),
        ("Object.keys($state);", []),
        # names that would read as patterns or are malformed grant nothing
        ("$emit('*');", []),
        ("$emit('evil*');", []),
        ("$emit('has space');", []),
        ("$state['a*'] = 1;", []),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_infer_capabilities(code: str, expected: list[str]) -> None:
    assert infer_capabilities(code) == expected


def test_inference_sees_top_level_return_and_await() -> None:
    code = "const v = await $ext.http.get('/'); return $state.count;"
    assert infer_capabilities(code) == ["ext:http", "state:read:count"]


def test_inferred_tokens_are_sorted_unique_and_parse() -> None:
    code = "$state.b = 1; $state.a = 2; $state.a = 3; $emit('z'); $emit('a');"
    result = infer_capabilities(code)
    assert result == sorted(set(result))
    for token in result:
        parse_capability(token)


def test_inferred_toggle_allows_what_the_handler_does() -> None:
    caps = CapabilitySet(infer_capabilities(TODO_TOGGLE))
    assert caps.can_write("todos") and not caps.can_write("input")


@pytest.mark.parametrize(
    "garbage",
    [
        "}}}{{{ $state.x = ",
        "\x00\x01\x02",
        "\ud800 $state.a = 1",
        "((((((((((" * 500,
        "/*",
        "`${",
        None,
        42,
        b"$state.a=1",
    ],
)
def test_inference_never_raises(garbage: object) -> None:
    result = infer_capabilities(garbage)  # type: ignore[arg-type]
    assert isinstance(result, list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_inference_property_never_raises(code: str) -> None:
    result = infer_capabilities(code)
    assert result == sorted(set(result))
    for token in result:
        parse_capability(token)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "$state",
                ".",
                "count",
                "[",
                "]",
                "(",
                ")",
                "=",
                "++",
                "push",
                "$emit",
                "'x'",
                "$view",
                "$ext",
                "http",
                ";",
                "{",
                "}",
                "const",
                "t",
                "await",
                "delete",
                ",",
                "=>",
                "\n",
            ]
        ),
        max_size=60,
    )
)
def test_inference_on_token_soup_never_raises(parts: list[str]) -> None:
    result = infer_capabilities(" ".join(parts))
    for token in result:
        parse_capability(token)
