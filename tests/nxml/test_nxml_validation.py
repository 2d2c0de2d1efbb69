"""Validation rules of NXML, each error located at the right line and column."""

from __future__ import annotations

from typing import Any

import pytest

from workspaces.nxml import (
    MAX_SOURCE_BYTES,
    NXMLError,
    NXMLValidationError,
    coerce_default,
    parse_nxml,
    validate_nxml,
)
from workspaces.nxml.errors import ALL_CODES


def doc(data: str = "", logic: str = "", view: str = "") -> str:
    return (
        '<NexusPanel id="p" title="P">\n'
        f"<Data>\n{data}\n</Data>\n"
        f"<Logic>\n{logic}\n</Logic>\n"
        f"<View>\n{view}\n</View>\n"
        "</NexusPanel>\n"
    )


COUNT = '<State name="count" type="number" default="0" />'
INC = '<Tool name="inc"><Handler>$state.count++;</Handler></Tool>'


def errors_of(source: str, **kwargs: Any) -> list[NXMLError]:
    with pytest.raises(NXMLValidationError) as caught:
        parse_nxml(source, **kwargs)
    assert caught.value.errors, "a refusal always says why"
    return caught.value.errors


def only(source: str, code: str) -> NXMLError:
    found = errors_of(source)
    assert [error.code for error in found] == [code], found
    return found[0]


def position_of(source: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    index = -1
    for _ in range(occurrence + 1):
        index = source.index(needle, index + 1)
    line = source.count("\n", 0, index) + 1
    return line, index - (source.rfind("\n", 0, index) + 1) + 1


def assert_at(error: NXMLError, source: str, needle: str) -> None:
    assert (error.line, error.column) == position_of(source, needle), error


# ----------------------------------------------------------------------------- positions


def test_unknown_attribute_points_at_the_attribute() -> None:
    source = doc(COUNT, INC, '<Layout strategy="row" colour="red" />')
    assert_at(only(source, "UNKNOWN_ATTRIBUTE"), source, 'colour="red"')


def test_unknown_element_points_at_its_tag() -> None:
    source = doc(COUNT, INC, "<Layout>\n  <Blink />\n</Layout>")
    assert_at(only(source, "UNKNOWN_ELEMENT"), source, "<Blink")


def test_enumerated_value_points_at_the_value() -> None:
    source = doc(COUNT, INC, '<Layout strategy="grid" />')
    error = only(source, "INVALID_VALUE")
    assert_at(error, source, 'grid"')
    assert "auto, stack, row" in error.message


def test_expression_error_points_inside_the_value() -> None:
    source = doc(COUNT, INC, '<Metric label="x" value="Total: {$state.count + }" />')
    error = only(source, "INVALID_EXPRESSION")
    assert_at(error, source, '}" />')


def test_expression_position_survives_entities() -> None:
    source = doc(COUNT, INC, '<Metric label="x" value="{&quot;a&quot; + $state.nope}" />')
    error = only(source, "UNKNOWN_STATE_KEY")
    assert_at(error, source, "$state.nope")


def test_errors_are_sorted_and_all_reported() -> None:
    source = doc(
        COUNT + '\n<State name="count" type="string" />',
        INC + '\n<Tool name="inc"><Handler>1</Handler></Tool>',
        '<Button label="x" trigger="nope" />\n<Input bind="$state.ghost" />',
    )
    found = errors_of(source)
    assert [error.code for error in found] == ["DUPLICATE_NAME", "DUPLICATE_NAME", "UNKNOWN_TRIGGER", "UNKNOWN_BIND"]
    assert found == sorted(found, key=lambda error: (error.line, error.column))
    assert all(error.line >= 1 and error.column >= 1 for error in found)


def test_validate_returns_the_same_list() -> None:
    source = doc(COUNT, INC, '<Button label="x" trigger="nope" />')
    assert validate_nxml(source) == errors_of(source)
    assert validate_nxml(doc(COUNT, INC)) == []


def test_error_codes_are_documented_constants() -> None:
    source = doc(COUNT, INC, '<Button label="x" trigger="nope" />')
    assert all(error.code in ALL_CODES for error in errors_of(source))
    error = errors_of(source)[0]
    assert error.to_dict() == {"code": error.code, "message": error.message, "line": error.line, "column": error.column}


# ----------------------------------------------------------------------------- handlers


def test_handler_syntax_error_is_mapped_to_the_nxml_line() -> None:
    source = doc(COUNT, '<Tool name="inc">\n  <Handler>\n    let a = 1;\n    a = ;\n  </Handler>\n</Tool>')
    error = only(source, "HANDLER_SYNTAX")
    assert error.line == position_of(source, "a = ;")[0]


def test_runtime_checker_location_is_mapped() -> None:
    calls: list[str] = []

    def checker(code: str) -> dict[str, Any] | None:
        calls.append(code)
        return {"code": "COMPILATION_ERROR", "message": "unexpected token", "location": {"line": 3, "column": 5}}

    source = doc(COUNT, '<Tool name="inc"><Handler>\n  first();\n  x = @;\n</Handler></Tool>')
    found = errors_of(source, syntax_checker=checker)
    assert [e.code for e in found] == ["HANDLER_SYNTAX"]
    error = found[0]
    assert calls == ["\n  first();\n  x = @;\n"]
    # handler line 3 is the NXML line holding "x = @;"; later lines start at column 1
    line, _ = position_of(source, "x = @;")
    assert (error.line, error.column) == (line, 5)
    assert "unexpected token" in error.message


def test_runtime_checker_first_line_column_is_offset_by_the_tag() -> None:
    def checker(code: str) -> dict[str, Any] | None:
        return {"code": "COMPILATION_ERROR", "message": "bad", "location": {"line": 1, "column": 3}}

    source = doc(COUNT, '<Tool name="inc"><Handler>x = @;</Handler></Tool>')
    error = errors_of(source, syntax_checker=checker)[0]
    line, column = position_of(source, "x = @;")
    assert (error.line, error.column) == (line, column + 2)


def test_checker_returning_none_accepts_the_handler() -> None:
    source = doc(COUNT, '<Tool name="inc"><Handler>$state.count++;</Handler></Tool>')
    assert parse_nxml(source, syntax_checker=lambda code: None).tool("inc") is not None


def test_broken_checker_falls_back_to_tree_sitter() -> None:
    def checker(code: str) -> dict[str, Any] | None:
        raise RuntimeError("sandbox down")

    good = doc(COUNT, INC)
    assert parse_nxml(good, syntax_checker=checker).tool("inc") is not None
    bad = doc(COUNT, '<Tool name="inc"><Handler>x = ;</Handler></Tool>')
    assert [e.code for e in errors_of(bad, syntax_checker=checker)] == ["HANDLER_SYNTAX"]


def test_checker_location_garbage_is_tolerated() -> None:
    def checker(code: str) -> dict[str, Any] | None:
        return {"code": "COMPILATION_ERROR", "message": None, "location": {"line": "x", "column": -4}}

    error = errors_of(doc(COUNT, INC), syntax_checker=checker)[0]
    assert error.code == "HANDLER_SYNTAX" and error.line >= 1 and error.column >= 1


def test_handler_code_keeps_entities_and_cdata() -> None:
    source = doc(
        COUNT,
        '<Tool name="a"><Handler>if ($state.count &lt; 3 &amp;&amp; true) $state.count++;</Handler></Tool>\n'
        '<Tool name="b"><Handler><![CDATA[if ($state.count < 3) $state.count--;]]></Handler></Tool>',
    )
    panel = parse_nxml(source)
    a, b = panel.tool("a"), panel.tool("b")
    assert a is not None and b is not None
    assert a.handler.code == "if ($state.count < 3 && true) $state.count++;"
    assert b.handler.code == "if ($state.count < 3) $state.count--;"
    assert (b.handler.line, b.handler.column) == position_of(source, "if ($state.count < 3) $state.count--")


def test_position_after_entities_in_handler() -> None:
    source = doc(COUNT, '<Tool name="a"><Handler>a &amp;&amp; b; x = ;</Handler></Tool>')
    error = only(source, "HANDLER_SYNTAX")
    # tree-sitter blames the statement or the token; either way on the right line, after the entities
    line, column = position_of(source, "a &amp;&amp;")
    assert error.line == line and error.column >= column


def test_unbalanced_brace_cannot_escape_the_wrapper() -> None:
    source = doc(COUNT, '<Tool name="inc"><Handler>$state.count++; } function evil() {</Handler></Tool>')
    assert only(source, "HANDLER_SYNTAX").message.endswith("ends the handler early")


def test_tool_needs_exactly_one_handler() -> None:
    assert only(doc(COUNT, '<Tool name="inc" />'), "MISSING_ELEMENT")
    two = doc(COUNT, '<Tool name="inc"><Handler>1;</Handler><Handler>2;</Handler></Tool>')
    assert_at(only(two, "DUPLICATE_ELEMENT"), two, "<Handler>2")


def test_elements_inside_handler_are_refused() -> None:
    source = doc(COUNT, '<Tool name="inc"><Handler>x; <b>bold</b></Handler></Tool>')
    assert_at(only(source, "UNKNOWN_ELEMENT"), source, "<b>")
    nested = doc(COUNT, '<Tool name="inc"><Handler>x; <Handler>y;</Handler></Handler></Tool>')
    assert_at(only(nested, "MISPLACED_ELEMENT"), nested, "<Handler>y")


def test_lifecycle_rules() -> None:
    ok = doc(
        COUNT,
        INC + '<Lifecycle on="mount"><Handler>$log("hi");</Handler></Lifecycle>'
        '<Lifecycle on="unmount"><Handler>$log("bye");</Handler></Lifecycle>',
    )
    assert set(parse_nxml(ok).lifecycle) == {"mount", "unmount"}
    twice = doc(COUNT, INC + '<Lifecycle on="mount"><Handler>1;</Handler></Lifecycle>' * 2)
    assert only(twice, "DUPLICATE_ELEMENT")
    assert only(doc(COUNT, INC + '<Lifecycle on="boot"><Handler>1;</Handler></Lifecycle>'), "INVALID_VALUE")
    assert only(doc(COUNT, INC + '<Lifecycle on="mount" />'), "MISSING_ELEMENT")


# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("type_", "raw", "value"),
    [
        ("string", " hi ", " hi "),
        ("number", "0", 0),
        ("number", "-3", -3),
        ("number", "1.5", 1.5),
        ("number", "1e3", 1000.0),
        ("number", " 7 ", 7),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("list", "[1, 2]", [1, 2]),
        ("list", "[]", []),
        ("object", '{"a": {"b": 1}}', {"a": {"b": 1}}),
    ],
)
def test_defaults_coerce(type_: str, raw: str, value: Any) -> None:
    assert coerce_default(type_, raw) == value
    assert type(coerce_default(type_, raw)) is type(value)


@pytest.mark.parametrize(
    ("type_", "raw"),
    [
        ("number", "abc"),
        ("number", ""),
        ("number", "NaN"),
        ("number", "Infinity"),
        ("number", "1e999"),
        ("number", "0x10"),
        ("boolean", "yes"),
        ("boolean", "True"),
        ("list", "{}"),
        ("list", "[1,"),
        ("object", "[]"),
        ("object", '{"a": NaN}'),
        ("list", "[" * 100_000),
    ],
)
def test_bad_defaults_raise_value_error(type_: str, raw: str) -> None:
    with pytest.raises(ValueError):
        coerce_default(type_, raw)


def test_default_errors_in_the_document() -> None:
    source = doc('<State name="n" type="number" default="ten" />', INC.replace("count", "n"))
    error = only(source, "INVALID_DEFAULT")
    assert_at(error, source, 'ten"')


def test_state_type_defaults_when_absent() -> None:
    data = "\n".join(f'<State name="{t}Key" type="{t}" />' for t in ("string", "number", "boolean", "list", "object"))
    panel = parse_nxml(doc(data))
    assert panel.initial_state() == {
        "stringKey": "",
        "numberKey": 0,
        "booleanKey": False,
        "listKey": [],
        "objectKey": {},
    }


def test_names_must_be_identifiers_and_unique() -> None:
    assert only(doc('<State name="a-b" type="string" />'), "INVALID_NAME")
    assert only(doc('<State name="a" type="string" /><Computed name="a" value="1" />'), "DUPLICATE_NAME")
    args = '<Tool name="t"><Arg name="x" type="string" /><Arg name="x" type="number" /><Handler>1;</Handler></Tool>'
    assert only(doc(logic=args), "DUPLICATE_NAME")


def test_arg_schema_types_and_required() -> None:
    logic = (
        '<Tool name="t">'
        '<Arg name="s" type="string" required="true" description="a text" />'
        '<Arg name="l" type="list" default="[1]" />'
        '<Arg name="o" type="object" />'
        '<Arg name="b" type="boolean" default="false" />'
        "<Handler>1;</Handler></Tool>"
    )
    tool = parse_nxml(doc(logic=logic)).tool("t")
    assert tool is not None
    assert tool.args_schema() == {
        "type": "object",
        "properties": {
            "s": {"type": "string", "description": "a text"},
            "l": {"type": "array", "default": [1]},
            "o": {"type": "object"},
            "b": {"type": "boolean", "default": False},
        },
        "required": ["s"],
        "additionalProperties": False,
    }


def test_computed_references_and_cycles() -> None:
    ok = parse_nxml(
        doc(COUNT + '<Computed name="b" value="$state.a + 1" /><Computed name="a" value="$state.count * 2" />')
    )
    assert ok.computed_order() == ["a", "b"]
    cyclic = doc(COUNT + '<Computed name="a" value="$state.a + 1" />')
    assert only(cyclic, "COMPUTED_CYCLE")
    assert only(doc(COUNT + '<Computed name="a" value="$state.ghost" />'), "UNKNOWN_STATE_KEY")
    assert parse_nxml(doc(COUNT + '<Computed name="a" value="Math.max(1, $state.count)" />')).computed


VOTES = '<State name="votes" type="object" default="{}" />'


def test_a_computed_value_is_any_expression_that_only_reads_state() -> None:
    total = '<Computed name="total" value="Object.values($state.votes).reduce((a, b) =&gt; a + b, 0)" />'
    definition = parse_nxml(doc(VOTES + total))
    assert definition.computed[0].references == ["votes"]
    leader = ('<Computed name="leader" value="Object.entries($state.votes).sort((a, b) =&gt; b[1] - a[1])[0]?.[0]'
              ' ?? null" />')
    assert parse_nxml(doc(VOTES + leader)).computed[0].references == ["votes"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("$state.count = 1", "may not assign to $state"),
        ("$state.count += 1", "may not assign to $state"),
        ("$state.count++", "(++ or --)"),
        ("delete $state.count", "may not delete"),
        ("$state.votes.push(1)", "push() changes what it is called on"),
        ("$emit('x', 1)", "cannot use $emit"),
        ("$ext.http.get('/')", "cannot use $ext"),
        ("1)); $state.count = 2; ((1", "one expression, not statements"),
        ("($state.count", "syntax error"),
    ],
)
def test_a_computed_value_that_writes_or_is_not_an_expression_is_refused(value: str, says: str) -> None:
    source = doc(COUNT + VOTES + f'<Computed name="c" value="1 + ({value})" />')
    errors = errors_of(source)
    assert [error.code for error in errors] == ["INVALID_EXPRESSION"], errors
    assert says in errors[0].message, errors[0].message
    line = source.splitlines()[errors[0].line - 1]
    value_column = line.index('value="1 + (') + len('value="') + 1
    assert errors[0].column >= value_column + len("1 + ("), (errors[0], value_column)


def test_the_error_points_at_the_write() -> None:
    source = doc(COUNT + '<Computed name="c" value="$state.count * 2 + ($state.count = 3)" />')
    error = errors_of(source)[0]
    line = source.splitlines()[error.line - 1]
    assert line[error.column - 1:].startswith("$state.count = 3"), (error, line)


def test_an_invalid_state_type_does_not_cascade() -> None:
    source = doc('<State name="n" type="integer" />', view='<Metric label="n" value="{$state.n}" />')
    assert only(source, "INVALID_TYPE")


# ----------------------------------------------------------------------------- capabilities


def test_declared_capabilities_are_normalised() -> None:
    logic = (
        '<Extension name="nexus.http" alias="web" />'
        '<Tool name="t"><Capabilities>'
        '<Capability type="state:write" scope="count" />'
        '<Capability type="ext:web" scope="*" />'
        '<Capability type="ext" scope="web" />'
        '</Capabilities><Handler>$state.count++; $emit("x");</Handler></Tool>'
    )
    tool = parse_nxml(doc(COUNT, logic)).tool("t")
    assert tool is not None and tool.capabilities_declared
    assert tool.capabilities == ["state:write:count", "ext:web"]


def test_empty_capability_block_grants_nothing() -> None:
    tool = parse_nxml(doc(COUNT, '<Tool name="t"><Capabilities /><Handler>$state.count++;</Handler></Tool>')).tool("t")
    assert tool is not None and tool.capabilities_declared and tool.capabilities == []


def test_bad_capabilities() -> None:
    source = doc(
        COUNT,
        '<Tool name="t"><Capabilities><Capability type="root" scope="*" /></Capabilities><Handler>1;</Handler></Tool>',
    )
    assert_at(only(source, "INVALID_CAPABILITY"), source, 'root"')
    assert only(
        doc(
            COUNT,
            '<Tool name="t"><Capabilities><Capability type="ext:nope" /></Capabilities><Handler>1;</Handler></Tool>',
        ),
        "UNKNOWN_EXTENSION",
    )
    two = doc(COUNT, '<Tool name="t"><Capabilities /><Capabilities /><Handler>1;</Handler></Tool>')
    assert only(two, "DUPLICATE_ELEMENT")


def test_extension_alias_defaults_to_the_last_name_part() -> None:
    panel = parse_nxml(doc(COUNT, '<Extension name="nexus.http" />' + INC))
    assert panel.extension_aliases() == {"http": "nexus.http"}
    assert only(doc(COUNT, '<Extension name="nexus.http" alias="1x" />' + INC), "INVALID_NAME")


# ----------------------------------------------------------------------------- view


def test_scope_is_known_inside_nested_iterates() -> None:
    view = (
        '<Iterate items="{$state.rows}" as="row">'
        '<Iterate items="{$scope.row.cells}" as="cell">'
        '<Text content="{$scope.row.name}: {$scope.cell}" />'
        "</Iterate></Iterate>"
    )
    panel = parse_nxml(doc('<State name="rows" type="list" />', view=view))
    assert panel.view[0].children[0].type == "Iterate"


def test_scope_errors() -> None:
    rows = '<State name="rows" type="list" />'
    outside = doc(rows, view='<Text content="{$scope.row}" />')
    assert_at(only(outside, "SCOPE_OUTSIDE_ITERATE"), outside, "$scope.row")
    wrong = doc(rows, view='<Iterate items="{$state.rows}" as="row"><Text content="x {$scope.cell}" /></Iterate>')
    assert only(wrong, "SCOPE_OUTSIDE_ITERATE")
    sibling = doc(rows, view='<Iterate items="{$state.rows}" as="row" /><Text content="{$scope.row}" />')
    assert only(sibling, "SCOPE_OUTSIDE_ITERATE")


def test_bind_rules() -> None:
    data = (
        COUNT + '<State name="name" type="string" /><State name="on" type="boolean" /><Computed name="c" value="1" />'
    )
    panel = parse_nxml(
        doc(
            data,
            view='<Input bind="$state.name" /><Input bind="{$state.count}" inputType="number" />'
            '<Switch bind="$state.on" label="On" />',
        )
    )
    assert panel.bound_keys() == {"name": "string", "count": "number", "on": "boolean"}
    assert only(doc(data, view='<Input bind="$state.nope" />'), "UNKNOWN_BIND")
    assert only(doc(data, view='<Input bind="name" />'), "UNKNOWN_BIND")
    assert only(doc(data, view='<Input bind="$state.c" />'), "READONLY_BIND")
    assert only(doc(data, view='<Switch bind="$state.name" />'), "INVALID_TYPE")


def test_trigger_must_name_a_tool() -> None:
    source = doc(COUNT, INC, '<Button label="a" trigger="inc" /><Action label="b" trigger="dec" />')
    assert_at(only(source, "UNKNOWN_TRIGGER"), source, 'dec"')
    assert only(doc(COUNT, INC, '<Action label="b" />'), "MISSING_ATTRIBUTE")


def test_component_attribute_kinds() -> None:
    assert only(doc(COUNT, INC, '<LogStream data="{$state.count}" height="tall" />'), "INVALID_VALUE")
    assert only(doc(COUNT, INC, '<Input bind="$state.count" disabled="maybe" />'), "INVALID_VALUE")
    assert only(doc(COUNT, INC, '<Chart data="$state.count" />'), "INVALID_EXPRESSION")
    assert only(doc(COUNT, INC, '<Chart data="{$state.count}" xKey="{x}" />'), "INVALID_VALUE")
    assert only(doc(COUNT, INC, '<If condition="$state.count"><Text content="x" /></If>'), "INVALID_EXPRESSION")
    ok = doc(
        COUNT,
        INC,
        '<If condition="{$state.count > 0 &amp;&amp; !($state.count === 3)}"><Text content="x" /></If>'
        '<If condition="true"><Text>Count is {$state.count}</Text></If>'
        "<StatusBadge label=\"s\" status=\"{$state.count ? 'success' : 'error'}\" />"
        '<Button label="go" trigger="inc" disabled="{$state.count >= 10}" args="{ {by: [1, 2], n: null} }" />'
        '<Container title="T" variant="card"><Chart type="bar" data="{$state.count}" height="200" /></Container>',
    )
    panel = parse_nxml(ok)
    text = panel.view[1].children[0]
    assert text.props == {"content": "Count is {$state.count}"}


def test_text_needs_content() -> None:
    assert only(doc(view="<Text />"), "MISSING_ATTRIBUTE")
    assert only(doc(view='<Text content="a">b</Text>'), "UNEXPECTED_TEXT")


def test_component_ids() -> None:
    source = doc(view='<Text id="a" content="x" /><Text id="a" content="y" />')
    assert_at(only(source, "DUPLICATE_ID"), source, 'a" content="y"')
    assert only(doc(view='<Text id="has space" content="x" />'), "INVALID_VALUE")


def test_panel_attributes() -> None:
    assert only('<NexusPanel id="x"><View /></NexusPanel>', "MISSING_ATTRIBUTE")
    assert only('<NexusPanel id="-x" title="t" />', "INVALID_VALUE")
    assert only('<NexusPanel title="  " />', "INVALID_VALUE")
    minimal = parse_nxml('<NexusPanel title="Only a title" />')
    assert (minimal.id, minimal.title, minimal.version, minimal.view_tree()) == (
        "",
        "Only a title",
        "1.0.0",
        {"type": "View", "props": {}, "children": []},
    )


def test_sections_at_most_once_and_known() -> None:
    assert only('<NexusPanel title="t"><View /><View /></NexusPanel>', "DUPLICATE_ELEMENT")
    assert only('<NexusPanel title="t"><Style /></NexusPanel>', "UNKNOWN_ELEMENT")
    assert only('<NexusPanel title="t"><Tool name="x" /></NexusPanel>', "MISPLACED_ELEMENT")
    assert only('<NexusPanel title="t">hello</NexusPanel>', "UNEXPECTED_TEXT")


# ----------------------------------------------------------------------------- XML level


def test_xml_errors_are_located() -> None:
    error = only('<NexusPanel title="t">\n  <View>\n</NexusPanel>', "XML_SYNTAX")
    assert (error.line, error.column) == (3, 3)


@pytest.mark.parametrize("code", ["if ($state.n < 10) $state.n++;", "if ($state.a && $state.b) return;"])
def test_markup_characters_in_a_handler_say_how_to_escape_them(code: str) -> None:
    source = f'<NexusPanel title="t"><Logic><Tool name="x"><Handler>{code}</Handler></Tool></Logic></NexusPanel>'
    message = only(source, "XML_SYNTAX").message
    assert message.startswith("XML is not well formed: not well-formed (invalid token); ")
    assert "wrap the handler in <![CDATA[ … ]]> or write &lt;" in message


def test_markup_errors_outside_handlers_have_no_handler_hint() -> None:
    source = '<NexusPanel title="t"><Logic><Tool name="x"><Handler>ok</Handler></Tool></Logic><View></NexusPanel>'
    assert "CDATA" not in only(source, "XML_SYNTAX").message


def test_doctype_is_located_at_its_start() -> None:
    source = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n<NexusPanel title="&a;" />'
    assert (only(source, "FORBIDDEN_XML").line, only(source, "FORBIDDEN_XML").column) == (2, 1)


@pytest.mark.parametrize("source", [None, 42, ["<NexusPanel/>"], object()])
def test_non_text_sources(source: object) -> None:
    assert only(source, "XML_SYNTAX")  # type: ignore[arg-type]


def test_bytes_are_decoded_or_refused() -> None:
    assert parse_nxml(b'<NexusPanel title="b" />').title == "b"  # type: ignore[arg-type]
    assert only(b'<NexusPanel title="\xff" />', "XML_SYNTAX")  # type: ignore[arg-type]


def test_lone_surrogate_is_refused() -> None:
    assert only('<NexusPanel title="\ud800" />', "XML_SYNTAX")


def test_size_limit_boundary() -> None:
    head, tail = '<NexusPanel title="t"><!-- ', " --></NexusPanel>"
    filler = MAX_SOURCE_BYTES - len(head) - len(tail)
    assert parse_nxml(head + "x" * filler + tail).title == "t"
    assert only(head + "x" * (filler + 1) + tail, "TOO_LARGE")
    # the limit counts bytes: two-byte characters hit it at half the length
    assert only(head + "é" * (filler // 2 + 1) + tail, "TOO_LARGE")


# ----------------------------------------------------------------------------- bounds and last resort


def test_error_list_is_bounded() -> None:
    view = '<Text bad="1" content="x" />' * 800
    found = errors_of(doc(view=view))
    assert len(found) == 501
    assert found[-1].code == "TOO_MANY_ERRORS"
    assert {error.code for error in found[:-1]} == {"UNKNOWN_ATTRIBUTE"}


def test_errors_per_attribute_value_are_bounded() -> None:
    found = errors_of(doc(view='<Text content="' + "{x}" * 5000 + '" />'))
    assert [error.code for error in found] == ["INVALID_EXPRESSION"] * 10


def test_an_internal_bug_still_surfaces_as_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from workspaces.nxml import validator

    def explode(self: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(validator.Validator, "build", explode)
    assert only(doc(COUNT, INC), "INTERNAL_ERROR")
