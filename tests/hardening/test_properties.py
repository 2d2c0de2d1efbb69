"""Property-based tests with Hypothesis, adding to what tests/nxml and tests/runtime already hold.

- NXML: generated *valid* documents always parse, round-trip and keep their declarations;
  every error of a mutated document points inside the document.
- Capabilities: parsing round-trips and never fails with anything but ValueError; a set's
  answers follow from its tokens alone; and the sandbox (guest glue plus host re-check)
  allows exactly what CapabilitySet allows.
- The browser's binding evaluator (evaluator.js under Node) agrees with JavaScript itself on
  the expressions it accepts, and refuses any expression with a call, an assignment or a
  global in it.
- Mutation application through the panel service: any sequence of set/delete batches leaves
  the state a model replay gives, the RESULTs' mutations replayed by a client give the same
  state, a refused batch changes nothing, and state versions strictly increase.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.capabilities import KINDS, CapabilitySet, parse_capability
from tests.client.support import node_binary, run_evaluator_cases
from tests.hardening.support import bump, hardening_settings
from workspaces.nxml import NXMLValidationError, parse_nxml, validate_nxml

# ============================================================================ NXML

IDENTIFIER = st.from_regex(r"[a-z][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
    lambda name: name not in {"true", "false", "null", "undefined", "this", "new", "delete", "typeof", "in"}
)
# Attribute text survives XML attribute normalisation unchanged (no tabs, newlines or controls).
ATTRIBUTE_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",),
                                                blacklist_characters="\x7f{}$"), max_size=30)
JSON_LEAF = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(
    alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), max_size=10)
JSON_TREE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(alphabet="abcxyz_", min_size=1, max_size=5), inner, max_size=3), max_leaves=8)
DEFAULTS: dict[str, Any] = {
    "string": ATTRIBUTE_TEXT,
    "number": st.integers(-10**9, 10**9) | st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
    "boolean": st.booleans(),
    "list": st.lists(JSON_TREE, max_size=4),
    "object": st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=5), JSON_TREE, max_size=4),
}


def _attribute(type_: str, value: Any) -> str:
    if type_ == "string":
        return str(value)
    if type_ == "boolean":
        return "true" if value else "false"
    if type_ == "number":
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value)


@st.composite
def valid_panels(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid NXML document and what it declares."""
    names = draw(st.lists(IDENTIFIER, min_size=3, max_size=12, unique=True))
    state_names, tool_names = names[: len(names) // 2 + 1], names[len(names) // 2 + 1:]
    states = {name: draw(st.sampled_from(sorted(DEFAULTS))) for name in state_names}
    states[state_names[0]] = "number"
    defaults = {name: draw(DEFAULTS[type_]) for name, type_ in states.items()}
    counter = state_names[0]
    lines = [f'<NexusPanel id="gen" title={quoteattr(draw(ATTRIBUTE_TEXT) or "t")} version="1.0.0">', "  <Data>"]
    for name, type_ in states.items():
        lines.append(f'    <State name="{name}" type="{type_}" default={quoteattr(_attribute(type_, defaults[name]))} />')
    lines.append(f'    <Computed name="twice_{counter}" value="$state.{counter} * 2" />')
    lines += ["  </Data>", "  <Logic>"]
    tools: dict[str, list[str]] = {}
    for tool in tool_names or ["poke"]:
        args = draw(st.lists(st.sampled_from(["by", "label", "flag"]), unique=True, max_size=3))
        kinds = {"by": "number", "label": "string", "flag": "boolean"}
        tools[tool] = args
        lines.append(f'    <Tool name="{tool}" description={quoteattr(draw(ATTRIBUTE_TEXT))}>')
        lines += [f'      <Arg name="{arg}" type="{kinds[arg]}" />' for arg in args]
        body = f"$state.{counter} = $state.{counter} + {'($args.by || 1)' if 'by' in args else '1'}; return 1;"
        lines += [f"      <Handler>{escape(body)}</Handler>", "    </Tool>"]
    lines += ["  </Logic>", "  <View>", '    <Layout strategy="stack" gap="md">']
    for name, type_ in states.items():
        lines.append(f'      <Text content={quoteattr("{$state." + name + "}")} />')
        if type_ == "string":
            lines.append(f'      <Input bind="$state.{name}" />')
        if type_ == "boolean":
            lines.append(f'      <Switch bind="$state.{name}" label="{name}" />')
    lines += [f'      <Button label="{tool}" trigger="{tool}" />' for tool in tools]
    lines += ["    </Layout>", "  </View>", "</NexusPanel>"]
    return "\n".join(lines), {"states": states, "defaults": defaults, "tools": tools, "counter": counter}


@hardening_settings(150)
@given(valid_panels())
def test_generated_valid_documents_parse_and_round_trip(panel: tuple[str, dict[str, Any]]) -> None:
    source, declared = panel
    try:
        definition = parse_nxml(source)
    except NXMLValidationError as exc:
        raise AssertionError(f"valid document refused: {[str(e) for e in exc.errors]}\n{source}") from None
    bump("properties", "nxml_valid_documents")
    assert validate_nxml(source) == []
    assert {state.name: state.type for state in definition.states} == declared["states"]
    initial = definition.initial_state()
    for name, value in declared["defaults"].items():
        assert initial[name] == value, (name, initial[name], value)
    assert sorted(tool.name for tool in definition.tools) == sorted(declared["tools"])
    for tool, args in declared["tools"].items():
        assert sorted(definition.tool(tool).args_schema()["properties"]) == sorted(args)  # type: ignore[union-attr]
        assert f"state:write:{declared['counter']}" in definition.tool_capabilities(tool)
    again = type(definition).from_dict(json.loads(json.dumps(definition.to_dict())))
    assert again.to_dict() == definition.to_dict()


@st.composite
def damaged_panels(draw: st.DrawFn) -> str:
    source, _ = draw(valid_panels())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(source)))
        cut = draw(st.integers(0, 12))
        insert = draw(st.sampled_from(["<", "</State>", '"', "&", "{", "}", "$state.", "é🙂", "\n", "<X a='1'>"])
                      | st.text(max_size=4))
        source = source[:position] + insert + source[position + cut:]
    return source


@hardening_settings(200)
@given(damaged_panels())
def test_errors_of_damaged_documents_point_inside_them(source: str) -> None:
    bump("properties", "nxml_damaged_documents")
    try:
        parse_nxml(source)
    except NXMLValidationError as exc:
        lines = source.split("\n")
        for error in exc.errors:
            assert 1 <= error.line <= len(lines) + 1, (str(error), len(lines))
            if error.line <= len(lines):
                assert 1 <= error.column <= len(lines[error.line - 1]) + 2, (str(error), lines[error.line - 1])


# ============================================================================ capabilities

SCOPE_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True)
ALIAS_NAME = st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,8}", fullmatch=True)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(KINDS))
    name = draw(ALIAS_NAME if kind == "ext" else SCOPE_NAME)
    scope = draw(st.sampled_from(["*", name, name + "*"]))
    return f"{kind}:{scope}"


def split_token(token: str) -> tuple[str, str]:
    kind = next(kind for kind in KINDS if token.startswith(kind + ":"))
    return kind, token[len(kind) + 1:]


def scope_covers(scope: str, name: str) -> bool:
    return scope == "*" or scope == name or (scope.endswith("*") and name.startswith(scope[:-1]))


def model_grants(tokens_: list[str], kind: str, name: str) -> bool:
    """What a list of tokens grants, written independently of runtime.capabilities."""
    kinds = {"state:read", "state:write"} if kind == "state:read" else {kind}
    return any(token_kind in kinds and scope_covers(scope, name) for token_kind, scope in map(split_token, tokens_))


@hardening_settings(300)
@given(tokens(), st.text(alphabet=" \t", max_size=2), st.text(alphabet=" \t", max_size=2))
def test_valid_tokens_round_trip(token: str, before: str, after: str) -> None:
    parsed = parse_capability(before + token + after)
    assert parsed.token == token
    assert parse_capability(parsed.token) == parsed
    assert str(parsed) == token


@hardening_settings(300)
@given(st.text(max_size=60) | st.builds("".join, st.lists(st.sampled_from(
    ["state", "events", "view", "ext", ":", "read", "write", "emit", "update", "*", " ", "a", ".", "$", "\n"]),
    max_size=12)))
def test_parsing_anything_fails_only_with_value_error(text: str) -> None:
    try:
        parsed = parse_capability(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert parsed.kind in KINDS and parsed.scope
    assert parse_capability(parsed.token) == parsed


@hardening_settings(300)
@given(st.lists(tokens(), max_size=6), st.sampled_from(KINDS), SCOPE_NAME | ALIAS_NAME, st.randoms())
def test_a_set_answers_from_its_tokens_alone(tokens_: list[str], kind: str, name: str, rng: Any) -> None:
    granted = CapabilitySet(tokens_)
    shuffled = list(tokens_) * 2
    rng.shuffle(shuffled)
    again = CapabilitySet(shuffled)
    asks = {
        "state:read": granted.can_read, "state:write": granted.can_write, "events:emit": granted.can_emit,
        "view:update": granted.can_update_view, "ext": granted.can_use_ext,
    }
    expected = model_grants(tokens_, kind, name)
    assert asks[kind](name) is expected
    assert sorted(again.tokens) == sorted(set(granted.tokens)), "order and duplicates must not matter"
    if kind != "ext" or re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name):
        assert granted.allows(f"{kind}:{name}") is expected
    if granted.can_write(name):
        assert granted.can_read(name), "write implies read"
    wider = CapabilitySet([*tokens_, "state:read:zz"])
    assert not expected or {"state:read": wider.can_read, "state:write": wider.can_write,
                            "events:emit": wider.can_emit, "view:update": wider.can_update_view,
                            "ext": wider.can_use_ext}[kind](name), "adding a token never takes a grant away"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from runtime import Runtime, RuntimeConfig

    runtime = Runtime(RuntimeConfig(min_instances=1, max_instances=2, cache_dir="/tmp/nexus-test-cache"))
    try:
        yield runtime
    finally:
        runtime.close()


KEYS = st.sampled_from(["count", "counter", "items", "user.name", "c"])
STATE_TOKENS = st.lists(
    st.builds(lambda kind, scope: f"{kind}:{scope}", st.sampled_from(["state:read", "state:write"]),
              st.sampled_from(["*", "count", "counter", "c*", "co*", "items", "user.*", "user*"]))
    | st.sampled_from(["events:emit:changed", "events:emit:*", "events:emit:ch*", "view:update:log"]),
    max_size=4,
)


@hardening_settings(80)
@given(STATE_TOKENS, KEYS, st.sampled_from(["read", "write", "delete", "emit"]))
def test_sandbox_allows_exactly_what_the_set_allows(sandbox: Any, tokens_: list[str], key: str, action: str) -> None:
    from runtime import ExecutionContext

    code = {
        "read": "return $state[$args.key];",
        "write": "$state[$args.key] = 7; return 1;",
        "delete": "delete $state[$args.key]; return 1;",
        "emit": "$emit($args.key, 1); return 1;",
    }[action]
    state = {"count": 1, "counter": 2, "items": [1], "user.name": "u", "c": 3}
    context = ExecutionContext(panel_id="props", handler_name="probe", state=state, args={"key": key},
                               capabilities=tokens_)
    result = sandbox.execute(code, context, timeout_ms=2000)
    bump("properties", "sandbox_capability_probes")
    granted = CapabilitySet(tokens_)
    if action == "read":
        assert result.status == "success", result.error
        assert result.return_value == (state[key] if granted.can_read(key) else None)
        return
    allowed = granted.can_write(key) if action in ("write", "delete") else granted.can_emit(key)
    if allowed:
        assert result.status == "success", (tokens_, key, action, result.error)
    else:
        assert result.status == "error" and result.error["code"] == "PERMISSION_DENIED", (tokens_, key, action,
                                                                                           result.status, result.error)
        assert result.state_mutations == [] and result.events == []


# ============================================================================ the browser's evaluator

EVAL_STATE: dict[str, Any] = {
    "count": 3, "zero": 0, "neg": -2.5, "name": "Ada", "empty": "", "flag": True, "off": False, "nothing": None,
    "items": [1, 2, 3], "user": {"age": 36, "tags": ["a", "b"]},
}
EVAL_SCOPE: dict[str, Any] = {"row": {"id": 7, "done": False}, "i": 1}
PATHS = ["$state.count", "$state.zero", "$state.neg", "$state.name", "$state.empty", "$state.flag", "$state.off",
         "$state.nothing", "$state.items[0]", "$state.items[$scope.i]", "$state.items.length", "$state.user.age",
         "$state.user.tags[1]", "$state['name']", "$scope.row.id", "$scope.row.done", "$state.missing"]
LITERALS = ["0", "1", "2.5", "-1", "'a'", "'10'", "''", "true", "false", "null", "undefined"]
BINARY = ["+", "-", "*", "/", "%", "===", "!==", "==", "!=", "<", "<=", ">", ">=", "&&", "||"]


def expressions() -> st.SearchStrategy[str]:
    leaves = st.sampled_from(PATHS + LITERALS)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(BINARY), inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda op, a: f"{op} {a}", st.sampled_from(["!", "-"]), inner),
        st.builds(lambda c, a, b: f"{c} ? {a} : {b}", inner, inner, inner),
    ), max_leaves=8)


NATIVE = r"""
const fs = require('fs');
function encode(v) {
  if (v === undefined) return {$undefined: true};
  if (typeof v === 'number' && !Number.isFinite(v)) return {$number: String(v)};
  if (Array.isArray(v)) return v.map(encode);
  if (v !== null && typeof v === 'object') { const o = {}; for (const k of Object.keys(v)) o[k] = encode(v[k]); return o; }
  return v;
}
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = input.cases.map((c) => {
  try { return {ok: true, value: encode(new Function('$state', '$scope', '"use strict"; return (' + c + ');')(input.state, input.scope))}; }
  catch (e) { return {ok: false, error: String(e)}; }
});
process.stdout.write(JSON.stringify(out));
"""


def native_results(sources: list[str]) -> list[dict[str, Any]]:
    payload = json.dumps({"cases": sources, "state": EVAL_STATE, "scope": EVAL_SCOPE})
    done = subprocess.run([node_binary(), "-e", NATIVE], input=payload, capture_output=True, text=True, timeout=60,
                          check=True)
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def same_value(left: Any, right: Any) -> bool:
    """Equal as JavaScript values: numbers compare by value (JSON may turn 3.0 into 3)."""
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers) and not isinstance(left, bool | str):
        return not isinstance(right, bool) and left == right
    return bool(type(left) is type(right) and left == right)


@pytest.mark.slow
@hardening_settings(40)
@given(st.lists(expressions(), min_size=10, max_size=25))
def test_evaluator_agrees_with_javascript(sources: list[str]) -> None:
    cases = [{"op": "eval", "source": source, "state": EVAL_STATE, "scope": EVAL_SCOPE} for source in sources]
    report = run_evaluator_cases(cases)
    native = native_results(sources)
    assert report["prototypeUntouched"] is True
    for source, ours, theirs in zip(sources, report["results"], native, strict=True):
        bump("properties", "evaluator_expressions")
        assert "threw" not in ours, (source, ours["threw"])
        assert theirs["ok"], (source, theirs)
        assert ours["ok"], f"{source!r} refused: {ours.get('error')}"
        assert same_value(ours["value"], theirs["value"]), (source, ours["value"], theirs["value"])


FORBIDDEN = st.sampled_from([
    "alert(1)", "$state.name.toUpperCase()", "window", "globalThis.x", "this", "$state.count = 1",
    "$state.count++", "constructor", "$state.constructor", "$state.__proto__", "Function('x')", "x => 1",
    "document.cookie", "$state['constructor']", "eval", "process", "`t`", "$args.x", "new Date()",
])


@pytest.mark.slow
@hardening_settings(40)
@given(st.lists(st.tuples(expressions(), FORBIDDEN, st.sampled_from(["{0} + {1}", "{1} + {0}", "{0} ? {1} : 1",
                                                                     "({1})", "[{0}, {1}]", "{{a: {1}}}"])),
                min_size=10, max_size=20))
def test_evaluator_refuses_whatever_hides_a_forbidden_construct(parts: list[tuple[str, str, str]]) -> None:
    sources = [shape.format(good, bad) for good, bad, shape in parts]
    cases = [{"op": "eval", "source": source, "state": EVAL_STATE, "scope": EVAL_SCOPE} for source in sources]
    report = run_evaluator_cases(cases)
    assert report["prototypeUntouched"] is True
    for source, result in zip(sources, report["results"], strict=True):
        bump("properties", "evaluator_refusals")
        assert "threw" not in result, (source, result["threw"])
        assert result["ok"] is False, f"{source!r} was evaluated to {result.get('value')!r}"
        assert result["fallback"] == ""


# ============================================================================ mutation application

BATCH_PANEL = """<NexusPanel id="batch" title="Batch">
  <Data>
    <State name="n" type="number" default="0" />
    <State name="s" type="string" default="" />
    <State name="f" type="boolean" default="false" />
    <State name="items" type="list" default="[]" />
    <State name="obj" type="object" default="{}" />
    <Computed name="size" value="$state.items.length" />
  </Data>
  <Logic>
    <Tool name="apply">
      <Arg name="batch" type="list" required="true" />
      <Capabilities><Capability type="state:write" scope="*" /></Capabilities>
      <Handler>
        for (const m of $args.batch) {
          if (m.op === 'delete') { delete $state[m.key]; } else { $state[m.key] = m.value; }
        }
        return $args.batch.length;
      </Handler>
    </Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""

TYPES = {"n": "number", "s": "string", "f": "boolean", "items": "list", "obj": "object"}
SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
SAFE_FLOAT = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False).filter(lambda x: x != 0 or math.copysign(1, x) > 0)
SAFE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | SAFE_FLOAT | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        SAFE_TEXT | st.sampled_from(["__proto__", "constructor", "toString", "0"]), inner, max_size=3),
    max_leaves=10,
)
VALUES = {
    "number": st.integers(-(2**53), 2**53) | SAFE_FLOAT,
    "string": SAFE_TEXT,
    "boolean": st.booleans(),
    "list": st.lists(SAFE_JSON, max_size=4),
    "object": st.dictionaries(SAFE_TEXT, SAFE_JSON, max_size=4),
}


@st.composite
def mutation(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from([*TYPES, "size", "ghost"]))
    if draw(st.integers(0, 4)) == 0:
        return {"op": "delete", "key": key}
    if key in TYPES and draw(st.integers(0, 9)) > 0:
        return {"op": "set", "key": key, "value": draw(st.none() | VALUES[TYPES[key]])}
    other = draw(st.sampled_from(sorted(VALUES)))
    return {"op": "set", "key": key, "value": draw(VALUES[other])}


def type_fits(type_: str, value: Any) -> bool:
    if value is None:
        return True
    checks = {
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict),
    }
    return bool(checks[type_](value))


def model_apply(state: dict[str, Any], batch: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The state after a batch, or None when the service must refuse the whole batch.

    The sandbox logs a handler's writes in order, except that a set of the key the previous
    entry set replaces that entry's value; the service checks every entry of that log.
    """
    new = dict(state)
    log: list[dict[str, Any]] = []
    for item in batch:
        if item["key"] == "size":
            return None  # computed keys are read-only
        previous = log[-1] if log else None
        if item["op"] == "set" and previous is not None and previous["op"] == "set" and previous["key"] == item["key"]:
            log[-1] = item
        else:
            log.append(item)
    for item in log:
        key = item["key"]
        if item["op"] == "delete":
            new.pop(key, None)
            continue
        if key not in TYPES or not type_fits(TYPES[key], item["value"]):
            return None
        new[key] = item["value"]
    new["size"] = len(new["items"]) if isinstance(new.get("items"), list) else None
    return new


def replay(state: dict[str, Any], mutations: list[dict[str, Any]]) -> dict[str, Any]:
    state = dict(state)
    for item in mutations:
        if item["operation"] == "delete":
            state.pop(item["key"], None)
        else:
            state[item["key"]] = item.get("value")
    return state


_panel_numbers = itertools.count()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_batches_through_the_service_match_a_model_replay() -> None:
    from asgiref.sync import async_to_sync

    from workspaces.models import Workspace
    from workspaces.services import panels as service

    workspace = Workspace.objects.create(slug="props", name="Props", max_panels=None)
    counts = {"batches": 0, "refused": 0, "committed": 0}

    @hardening_settings(40)
    @given(st.lists(st.lists(mutation(), max_size=6), min_size=1, max_size=5))
    def run(batches: list[list[dict[str, Any]]]) -> None:
        panel_id = f"batch{next(_panel_numbers)}"
        panel, _ = async_to_sync(service.create_panel)(workspace, BATCH_PANEL, panel_id=panel_id)
        try:
            model = dict(panel.state)
            client_view = dict(panel.state)
            version = panel.state_version
            for batch in batches:
                panel = service.get_panel(workspace, panel_id)
                outcome = async_to_sync(service.run_tool)(panel, "apply", {"batch": batch}, actor="props")
                stored = service.get_panel(workspace, panel_id)
                expected = model_apply(model, batch)
                counts["batches"] += 1
                if expected is None:
                    counts["refused"] += 1
                    assert outcome.status == "error", (batch, outcome.body())
                    assert stored.state == model and stored.state_version == version, "a refused batch wrote"
                    continue
                assert outcome.status == "success", (batch, outcome.error)
                counts["committed"] += 1
                if outcome.mutations:
                    assert outcome.state_version == version + 1 == stored.state_version
                    version = stored.state_version
                else:
                    assert stored.state_version == version
                client_view = replay(client_view, outcome.mutations)
                assert stored.state == expected, (batch, stored.state, expected)
                assert client_view == stored.state, "replaying the RESULT mutations does not give the state"
                model = expected
        finally:
            async_to_sync(service.delete_panel)(service.get_panel(workspace, panel_id))

    run()
    for name, value in counts.items():
        bump("properties", f"mutation_{name}", value)
    assert counts["refused"] and counts["committed"], counts


def test_no_generated_expression_is_trivially_refused() -> None:
    """Guard for the differential test: every path and literal on its own is accepted."""
    sources = PATHS + LITERALS
    report = run_evaluator_cases([{"op": "eval", "source": s, "state": EVAL_STATE, "scope": EVAL_SCOPE}
                                  for s in sources])
    refused = [s for s, r in zip(sources, report["results"], strict=True) if not r["ok"]]
    assert refused == []
