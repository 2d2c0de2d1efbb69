"""A panel's state carried over to a new definition of its <State>s (docs/authoring.md, "State migration").

For every key the new source declares:

- same type as before: the stored value is kept;
- not declared before: it starts at its new default (``added``);
- type changed: the old value is kept converted when the conversion is lossless, i.e. converting
  it back gives exactly the old value (number 3 <-> string "3", boolean true <-> string "true");
  any other value starts at the new default (``reset``).

Keys the new source no longer declares are dropped (``removed``). <Computed> keys are not
migrated: they are computed again from the migrated state.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from workspaces.nxml import PanelDefinition
from workspaces.services.values import matches_type

_NO_VALUE = object()


@dataclass(slots=True)
class StateMigration:
    """The migrated state of the declared keys, and what happened to which key."""

    state: dict[str, Any]
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "reset": self.reset, "converted": self.converted}


def _number_from_text(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return _NO_VALUE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _NO_VALUE
    return value if not isinstance(value, float) or math.isfinite(value) else _NO_VALUE


def _to_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return _NO_VALUE


def _boolean_from_text(text: str) -> Any:
    return {"true": True, "false": False}.get(text, _NO_VALUE)


def _convert(value: Any, to_type: str) -> Any:
    """``value`` as a ``to_type``, or _NO_VALUE when there is no conversion for it."""
    if to_type == "string":
        return _to_text(value)
    if isinstance(value, str) and to_type == "number":
        return _number_from_text(value)
    if isinstance(value, str) and to_type == "boolean":
        return _boolean_from_text(value)
    return _NO_VALUE


def lossless_conversion(value: Any, from_type: str, to_type: str) -> Any:
    """The converted value when converting it back to ``from_type`` restores it exactly, else _NO_VALUE."""
    converted = _convert(value, to_type)
    if converted is _NO_VALUE or not matches_type(to_type, converted):
        return _NO_VALUE
    back = _convert(converted, from_type)
    same = back is not _NO_VALUE and type(back) is type(value) and back == value
    return converted if same else _NO_VALUE


def migrate_state(old: PanelDefinition, new: PanelDefinition, stored: dict[str, Any]) -> StateMigration:
    """The state ``stored`` (kept by ``old``) as ``new`` declares it."""
    old_types = {state.name: state.type for state in old.states}
    new_names = {state.name for state in new.states}
    migration = StateMigration(state={})
    for declared in new.states:
        name, default = declared.name, copy.deepcopy(declared.default)
        if name not in old_types or name not in stored:
            migration.added.append(name)
            migration.state[name] = default
        elif old_types[name] == declared.type and matches_type(declared.type, stored[name]):
            migration.state[name] = stored[name]
        else:
            converted = lossless_conversion(stored[name], old_types[name], declared.type)
            if converted is _NO_VALUE:
                migration.reset.append(name)
                migration.state[name] = default
            else:
                migration.converted.append(name)
                migration.state[name] = converted
    migration.removed = sorted(name for name in old_types if name not in new_names and name in stored)
    return migration
