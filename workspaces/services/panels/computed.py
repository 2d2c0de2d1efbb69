"""<Computed> keys: evaluated together in the sandbox whenever the state changes."""

from __future__ import annotations

import json
import logging
from typing import Any

from runtime import ExecutionContext
from workspaces.nxml import PanelDefinition
from workspaces.services.sandbox import get_runtime

logger = logging.getLogger("nexus.panels")
# All of a panel's computed keys together get this long per change of state.
COMPUTED_TIMEOUT_MS = 200

def computed_names(definition: PanelDefinition) -> set[str]:
    return {item.name for item in definition.computed}


def state_types(definition: PanelDefinition) -> dict[str, str]:
    return {state.name: state.type for state in definition.states}


def _computed_program(definition: PanelDefinition) -> str:
    """One sandbox program that evaluates every Computed key in dependency order.

    Each expression sees ``$state`` as the stored state overlaid with the keys computed so far.
    """
    expressions = {item.name: item.expression for item in definition.computed}
    lines = [
        "const __base = $state; const __out = {};",
        "const __view = new Proxy({}, { get: (_, k) => (k in __out ? __out[k] : __base[k]) });",
    ]
    for name in definition.computed_order():
        lines.append(
            f"__out[{json.dumps(name)}] = (($state) => {{ try {{ return ({expressions[name]}); }} "
            "catch (e) { return null; } })(__view);"
        )
    lines.append("return __out;")
    return "\n".join(lines)


def compute(definition: PanelDefinition, state: dict[str, Any], sandbox_key: str) -> dict[str, Any]:
    """Values of the <Computed> keys for this state (null where an expression fails)."""
    if not definition.computed:
        return {}
    names = [item.name for item in definition.computed]
    context = ExecutionContext(
        panel_id=sandbox_key,
        handler_name="<computed>",
        state={k: v for k, v in state.items() if k not in names},
        args={},
        capabilities=["state:read:*"],
        tenant=sandbox_key.partition("/")[0],
    )
    result = get_runtime().execute(_computed_program(definition), context, timeout_ms=COMPUTED_TIMEOUT_MS)
    if result.status != "success" or not isinstance(result.return_value, dict):
        logger.warning("computed keys of %s failed: %s", definition.id, result.error)
        return dict.fromkeys(names)
    return {name: result.return_value.get(name) for name in names}


def sandbox_key(workspace_slug: str, panel_id: str) -> str:
    """The sandbox's notion of a panel: instances are reset whenever this changes."""
    return f"{workspace_slug}/{panel_id}"
