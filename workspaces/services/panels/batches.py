"""Applying one batch of mutations, events and view commands to a panel's stored state."""

from __future__ import annotations

from typing import Any

from runtime import ExecutionResult
from runtime.capabilities import CapabilitySet
from workspaces.nxml import PanelDefinition
from workspaces.services import panel_rows
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.computed import compute, computed_names, sandbox_key, state_types
from workspaces.services.panels.errors import BatchRefused, ServiceError
from workspaces.services.panels.records import Commit, PanelRef
from workspaces.services.publish import commit_message, publish
from workspaces.services.values import describe, matches_type, unstorable_text


def _check_mutation(definition: PanelDefinition, capabilities: CapabilitySet | None, mutation: dict[str, Any]) -> None:
    key = mutation.get("key")
    if not isinstance(key, str):
        raise BatchRefused(ErrorCode.EXECUTION_ERROR, "Mutation without a key")
    if key in computed_names(definition):
        raise BatchRefused(ErrorCode.PERMISSION_DENIED, f"State key '{key}' is computed and read-only")
    if capabilities is not None and not capabilities.can_write(key):
        raise BatchRefused(ErrorCode.PERMISSION_DENIED, f"No capability to write state key '{key}'")
    state_type = state_types(definition).get(key)
    if state_type is None and mutation.get("operation") == "delete":
        return
    if state_type is None:
        raise BatchRefused(ErrorCode.EXECUTION_ERROR, f"State key '{key}' is not declared in <Data>")
    if mutation.get("operation") == "set":
        value = mutation.get("value")
        problem = unstorable_text(value)
        if problem:
            message = f"State key '{key}' cannot be stored: {problem}"
            raise BatchRefused(ErrorCode.EXECUTION_ERROR, message)
        if value is not None and not matches_type(state_type, value):
            message = f"State key '{key}' is a {state_type}, not a {describe(value)}"
            raise BatchRefused(ErrorCode.EXECUTION_ERROR, message)


def _check_event(capabilities: CapabilitySet | None, event: dict[str, Any]) -> None:
    if capabilities is not None and not capabilities.can_emit(str(event.get("name"))):
        raise BatchRefused(ErrorCode.PERMISSION_DENIED, f"No capability to emit '{event.get('name')}'")


def _check_view_command(capabilities: CapabilitySet | None, command: dict[str, Any]) -> None:
    if capabilities is not None and not capabilities.can_update_view(str(command.get("componentId"))):
        component = command.get("componentId")
        raise BatchRefused(ErrorCode.PERMISSION_DENIED, f"No capability to update view '{component}'")


class Conflict(Exception):
    """Another process committed to the panel after this segment read it."""


def apply_batch(
    ref: PanelRef,
    definition: PanelDefinition,
    state: dict[str, Any],
    version: int,
    result: ExecutionResult | None,
    capabilities: CapabilitySet | None,
    mutations: list[dict[str, Any]] | None = None,
) -> Commit:
    """Check, store and publish one batch; must run inside a transaction. Raises BatchRefused."""
    # The runtime's typed shapes become the plain dicts the panel's commit carries.
    mutations = [dict(m) for m in (result.state_mutations if result is not None else mutations or [])]
    events = [dict(e) for e in result.events] if result is not None else []
    view_commands = [dict(c) for c in result.view_commands] if result is not None else []
    for mutation in mutations:
        _check_mutation(definition, capabilities, mutation)
    for event in events:
        _check_event(capabilities, event)
    for command in view_commands:
        _check_view_command(capabilities, command)
    if not mutations:
        if events or view_commands:
            publish(ref.workspace_slug, ref.panel_id, commit_message(version, [], events, view_commands))
        return Commit(state, version, [], events, view_commands)
    state = dict(state)
    for mutation in mutations:
        if mutation.get("operation") == "delete":
            state.pop(mutation["key"], None)
        else:
            state[mutation["key"]] = mutation.get("value")
    applied = [dict(m) for m in mutations]
    for name, value in compute(definition, state, sandbox_key(ref.workspace_slug, ref.panel_id)).items():
        if state.get(name) != value or name not in state:
            applied.append({"key": name, "value": value, "operation": "set"})
        state[name] = value
    if not panel_rows.write_state(ref.pk, state, version + 1, expected=version):
        raise Conflict()
    # Published before the transaction ends, while no other writer can commit to this panel.
    publish(ref.workspace_slug, ref.panel_id, commit_message(version + 1, applied, events, view_commands))
    return Commit(state, version + 1, applied, events, view_commands)


def read_state(panel_pk: int, lock: bool) -> tuple[dict[str, Any], int]:
    row = panel_rows.read_state(panel_pk, lock=lock)
    if row is None:
        raise ServiceError(ErrorCode.NOT_FOUND, "Panel was deleted")
    return row
