"""The controls that run tools (Input with trigger and args, Checkbox), Chart units, and <Event>."""

from __future__ import annotations

import json

from tests.nxml.test_nxml_validation import COUNT, INC, assert_at, doc, only
from workspaces.nxml import PanelDefinition, parse_nxml, validate_nxml

DONE = '<State name="done" type="boolean" default="false" />'
TEXT = '<State name="text" type="string" default="" />'
TODOS = '<State name="todos" type="list" default="[]" />'
TOGGLE = '<Tool name="toggle"><Arg name="id" type="number" /><Handler>$state.count++;</Handler></Tool>'


def test_input_runs_a_named_tool_with_args() -> None:
    source = doc(data=TEXT + COUNT, logic=INC, view='<Input bind="$state.text" trigger="inc" args="{ {by: 1} }" />')
    (node,) = parse_nxml(source).view
    assert (node.props["trigger"], node.props["args"]) == ("inc", "{ {by: 1} }")


def test_input_trigger_naming_no_tool_is_located() -> None:
    source = doc(data=TEXT + COUNT, logic=INC, view='<Input bind="$state.text" trigger="add" />')
    error = only(source, "UNKNOWN_TRIGGER")
    assert "'add'" in error.message and "inc" in error.message
    assert_at(error, source, 'add"')


def test_input_args_must_be_an_expression() -> None:
    source = doc(data=TEXT + COUNT, logic=INC, view='<Input bind="$state.text" trigger="inc" args="by=1" />')
    assert_at(only(source, "INVALID_EXPRESSION"), source, 'by=1"')


def test_checkbox_in_iterate_shows_a_row_field_and_runs_a_tool() -> None:
    view = ('<Iterate items="{$state.todos}" as="todo" key="id">'
            '<Checkbox label="{$scope.todo.text}" checked="{$scope.todo.done}" trigger="toggle"'
            ' args="{ {id: $scope.todo.id} }" /></Iterate>')
    definition = parse_nxml(doc(data=TODOS + COUNT, logic=TOGGLE, view=view))
    (checkbox,) = definition.view[0].children
    assert checkbox.type == "Checkbox" and checkbox.props["checked"] == "{$scope.todo.done}"


def test_checkbox_binds_a_boolean_key_only() -> None:
    assert parse_nxml(doc(data=DONE, view='<Checkbox bind="$state.done" label="Done" />')).bound_keys() == {
        "done": "boolean"}
    source = doc(data=TEXT, view='<Checkbox bind="$state.text" />')
    assert "needs boolean" in only(source, "INVALID_TYPE").message


def test_checkbox_trigger_naming_no_tool_is_located() -> None:
    source = doc(data=COUNT, logic=INC, view='<Checkbox checked="true" trigger="nope" />')
    assert_at(only(source, "UNKNOWN_TRIGGER"), source, 'nope"')


def test_chart_takes_a_unit() -> None:
    source = doc(data=TODOS, view='<Chart type="bar" data="{$state.todos}" unit="ms" />')
    assert parse_nxml(source).view[0].props["unit"] == "ms"


# ---------------------------------------------------------------------------- <Event>

EVENTS = '<Event name="announce" broadcast="true" description="Every viewer" /><Event name="toast" />'


def test_declared_events_say_which_are_broadcast() -> None:
    definition = parse_nxml(doc(data=COUNT, logic=EVENTS + INC))
    assert [(e.name, e.broadcast, e.description) for e in definition.events] == [
        ("announce", True, "Every viewer"), ("toast", False, "")]
    assert definition.broadcast_events() == frozenset({"announce"})


def test_declared_events_survive_storage() -> None:
    definition = parse_nxml(doc(data=COUNT, logic=EVENTS + INC))
    restored = PanelDefinition.from_dict(json.loads(json.dumps(definition.to_dict())))
    assert restored.events == definition.events


def test_definitions_stored_before_events_existed_have_none() -> None:
    stored = parse_nxml(doc(data=COUNT, logic=INC)).to_dict()
    del stored["events"]
    assert PanelDefinition.from_dict(stored).broadcast_events() == frozenset()


def test_event_declared_twice_is_located() -> None:
    source = doc(data=COUNT, logic='<Event name="a" /><Event name="a" broadcast="true" />' + INC)
    error = only(source, "DUPLICATE_NAME")
    assert error.line == source[: source.index('broadcast="true"')].count("\n") + 1


def test_event_broadcast_must_be_true_or_false() -> None:
    source = doc(data=COUNT, logic='<Event name="a" broadcast="yes" />' + INC)
    assert_at(only(source, "INVALID_VALUE"), source, 'yes"')


def test_event_needs_a_name() -> None:
    found = validate_nxml(doc(data=COUNT, logic='<Event broadcast="true" />' + INC))
    assert [error.code for error in found] == ["MISSING_ATTRIBUTE"], found
