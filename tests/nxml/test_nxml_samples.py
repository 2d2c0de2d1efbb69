"""The three sample panels parse cleanly into the expected typed tree and JSON forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.capabilities import CapabilitySet
from workspaces.nxml import PanelDefinition, parse_nxml, validate_nxml

SHARED = Path(__file__).resolve().parents[3] / "shared" / "examples"
LOCAL = Path(__file__).resolve().parent / "samples"
FIXTURES = Path(__file__).resolve().parents[2] / "workspaces" / "fixtures" / "panels"


def sample(name: str) -> str:
    """The shared sample when the workspace has it, else the copy kept with the tests."""
    path = SHARED / f"{name}.nxml"
    return (path if path.exists() else LOCAL / f"{name}.nxml").read_text()


@pytest.mark.parametrize("name", ["counter", "todo", "monitor"])
def test_sample_is_valid(name: str) -> None:
    assert validate_nxml(sample(name)) == []


@pytest.mark.parametrize("name", ["counter", "todo", "monitor"])
def test_sample_round_trips_through_json(name: str) -> None:
    definition = parse_nxml(sample(name))
    stored = json.loads(json.dumps(definition.to_dict()))
    restored = PanelDefinition.from_dict(stored)
    assert restored == definition
    assert restored.to_dict() == stored
    assert restored.view_tree() == definition.view_tree()


def test_counter() -> None:
    panel = parse_nxml(sample("counter"))
    assert (panel.id, panel.title, panel.version) == ("counter", "Counter", "1.0.0")
    assert panel.initial_state() == {"count": 0}
    assert [(c.name, c.expression, c.references) for c in panel.computed] == [("double", "$state.count * 2", ["count"])]
    increment = panel.tool("increment")
    assert increment is not None and not increment.capabilities_declared
    assert increment.capabilities == ["events:emit:changed", "state:read:count", "state:write:count"]
    assert panel.tool_capabilities("reset") == ["state:write:count"]
    assert increment.args_schema() == {
        "type": "object",
        "properties": {"by": {"type": "number", "default": 1}},
        "required": [],
        "additionalProperties": False,
    }
    assert increment.description == "Add to the counter"
    assert "$emit('changed', $state.count);" in increment.handler.code
    assert panel.bound_keys() == {}


def test_counter_view_tree_keeps_raw_props() -> None:
    tree = parse_nxml(sample("counter")).view_tree()
    assert tree["type"] == "View" and len(tree["children"]) == 1
    layout = tree["children"][0]
    assert layout == {
        "type": "Layout",
        "props": {"strategy": "stack", "gap": "md"},
        "children": layout["children"],
    }
    metric, text, row = layout["children"]
    assert metric == {
        "type": "Metric",
        "props": {"id": "count", "label": "Count", "value": "{$state.count}"},
        "children": [],
    }
    assert text["props"] == {"content": "Double: {$state.double}", "variant": "caption"}
    assert [button["props"] for button in row["children"]] == [
        {"label": "+1", "trigger": "increment"},
        {"label": "+5", "trigger": "increment", "args": "{ {by: 5} }"},
        {"label": "Reset", "trigger": "reset", "variant": "ghost"},
    ]
    json.dumps(tree)  # plain JSON all the way down


def test_todo() -> None:
    panel = parse_nxml(sample("todo"))
    assert panel.initial_state() == {"todos": [], "input": "", "nextId": 1}
    assert panel.bound_keys() == {"input": "string"}
    toggle = panel.tool("toggle")
    assert toggle is not None
    # toggle mutates the element that find() returns: inference must grant the write.
    assert "state:write:todos" in toggle.capabilities
    assert CapabilitySet(toggle.capabilities).can_write("todos")
    assert toggle.args_schema() == {
        "type": "object",
        "properties": {"id": {"type": "number"}},
        "required": ["id"],
        "additionalProperties": False,
    }
    add = panel.tool("add")
    assert add is not None
    assert {"state:write:todos", "state:write:nextId", "state:write:input", "events:emit:toast"} <= set(
        add.capabilities
    )
    assert panel.tool_capabilities("remove") == ["state:read:todos", "state:write:todos"]
    iterate = panel.view_tree()["children"][0]["children"][2]
    assert iterate["type"] == "Iterate"
    assert iterate["props"] == {"items": "{$state.todos}", "as": "todo", "key": "id"}


def test_monitor() -> None:
    panel = parse_nxml(sample("monitor"))
    assert [(e.name, e.alias) for e in panel.extensions] == [("nexus.http", "http")]
    assert panel.extension_aliases() == {"http": "nexus.http"}
    check = panel.tool("checkHealth")
    assert check is not None and check.capabilities_declared
    assert check.capabilities == ["state:read:*", "state:write:*", "ext:http", "events:emit:toast"]
    assert panel.tool_capabilities("clearLogs") == ["state:write:logs"]
    assert panel.initial_state() == {"status": "unknown", "loading": False, "logs": [], "history": []}


def test_initial_state_is_a_fresh_copy() -> None:
    panel = parse_nxml(sample("todo"))
    first = panel.initial_state()
    first["todos"].append("x")
    assert panel.initial_state()["todos"] == []


def test_lifecycle_capabilities_are_inferred() -> None:
    source = sample("counter").replace(
        "</Logic>",
        '<Lifecycle on="mount"><Handler>$state.count = 10; $emit("ready");</Handler></Lifecycle></Logic>',
    )
    panel = parse_nxml(source)
    assert set(panel.lifecycle) == {"mount"}
    assert panel.lifecycle_capabilities("mount") == ["events:emit:ready", "state:write:count"]
    assert panel.tool_capabilities("mount") == ["events:emit:ready", "state:write:count"]
    with pytest.raises(KeyError):
        panel.tool_capabilities("unmount")


def _contract(definition: Any) -> dict[str, Any]:
    """What clients of a sample rely on: its id, state keys, computed keys and tools with their args."""
    return {
        "id": definition.id,
        "states": {state.name: (state.type, state.default) for state in definition.states},
        "computed": {item.name for item in definition.computed},
        "tools": {
            tool.name: {arg.name: (arg.type, arg.required, arg.default) for arg in tool.args}
            for tool in definition.tools
        },
    }


@pytest.mark.parametrize("name", ["counter", "monitor", "todo"])
def test_demo_fixtures_are_the_shared_examples_plus_documented_improvements(name: str) -> None:
    """The demo's panels keep everything of the contract's examples and may add to them
    (components and attributes of docs/nxml.md, new state keys); the examples stay valid."""
    fixture = _contract(parse_nxml((FIXTURES / f"{name}.nxml").read_text(encoding="utf-8")))
    shared = SHARED / f"{name}.nxml"
    if not shared.exists():  # the contract's folder sits beside the checkout on developer machines and in CI
        return
    example = _contract(parse_nxml(shared.read_text(encoding="utf-8")))
    assert fixture["id"] == example["id"]
    assert example["states"].items() <= fixture["states"].items()
    assert example["computed"] <= fixture["computed"]
    for tool, args in example["tools"].items():
        assert fixture["tools"].get(tool) == args, (name, tool)
