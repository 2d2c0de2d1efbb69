"""The state migration's rules, one key at a time (docs/authoring.md, "State migration")."""

from __future__ import annotations

from typing import Any

import pytest

from workspaces.nxml.tree import PanelDefinition, StateDef
from workspaces.services.panels.migration import _NO_VALUE, lossless_conversion, migrate_state


@pytest.mark.parametrize(("value", "from_type", "to_type", "expected"), [
    (3, "number", "string", "3"),
    (2.5, "number", "string", "2.5"),
    ("3", "string", "number", 3),
    ("-0.25", "string", "number", -0.25),
    (True, "boolean", "string", "true"),
    ("false", "string", "boolean", False),
])
def test_lossless_conversions(value: Any, from_type: str, to_type: str, expected: Any) -> None:
    converted = lossless_conversion(value, from_type, to_type)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(("value", "from_type", "to_type"), [
    (" 3", "string", "number"),
    ("03", "string", "number"),
    ("1e3", "string", "number"),
    ("NaN", "string", "number"),
    ("abc", "string", "number"),
    ("yes", "string", "boolean"),
    ("True", "string", "boolean"),
    (1, "number", "boolean"),
    (True, "boolean", "number"),
    ([1], "list", "string"),
    ({"a": 1}, "object", "list"),
    ("[]", "string", "list"),
])
def test_conversions_that_would_lose_something_are_refused(value: Any, from_type: str, to_type: str) -> None:
    assert lossless_conversion(value, from_type, to_type) is _NO_VALUE


def definition(*states: tuple[str, str, Any]) -> PanelDefinition:
    return PanelDefinition(id="p", title="P", states=[StateDef(name, kind, default) for name, kind, default in states])


def test_each_rule_on_one_state() -> None:
    old = definition(("same", "number", 0), ("gone", "string", ""), ("label", "number", 0), ("items", "list", []),
                     ("absent", "number", 0))
    new = definition(("same", "number", 1), ("fresh", "boolean", True), ("label", "string", "-"),
                     ("items", "object", {}), ("absent", "number", 9))
    stored = {"same": 7, "gone": "x", "label": 4, "items": [1, 2], "stale": 1}
    migration = migrate_state(old, new, stored)
    assert migration.state == {"same": 7, "fresh": True, "label": "4", "items": {}, "absent": 9}
    assert migration.summary() == {"added": ["fresh", "absent"], "removed": ["gone"], "reset": ["items"],
                                   "converted": ["label"]}
    assert stored["items"] == [1, 2], "the stored state is not changed in place"


def test_a_stored_value_of_the_wrong_type_is_reset() -> None:
    same = definition(("count", "number", 0))
    migration = migrate_state(same, same, {"count": "seven"})
    assert migration.state == {"count": 0} and migration.reset == ["count"]
