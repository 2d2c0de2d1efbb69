"""Direct state changes from a client or the admin: a bound value set, the state reset to its defaults."""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError, transaction

from nexus import lifecycle
from workspaces.models import Panel
from workspaces.nxml import PanelDefinition
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.batches import apply_batch, read_state
from workspaces.services.panels.computed import computed_names
from workspaces.services.panels.definitions import adefinition_of
from workspaces.services.panels.errors import BatchRefused, ServiceError
from workspaces.services.panels.records import Commit, PanelRef
from workspaces.services.panels.segments import local_lock
from workspaces.services.panels.workers import in_worker
from workspaces.services.values import describe, matches_type, unstorable_text

logger = logging.getLogger("nexus.panels")

async def set_value(panel: Panel, key: Any, value: Any, actor: str = "") -> Commit:
    """Set a state key that an Input or Switch binds, as one committed change."""
    if lifecycle.is_draining():
        raise ServiceError(ErrorCode.UNAVAILABLE, "Server is shutting down")
    definition = await adefinition_of(panel)
    bound = definition.bound_keys()
    if not isinstance(key, str) or key not in bound:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"State key '{key}' is not bound by an Input or Switch")
    if not matches_type(bound[key], value):
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"State key '{key}' is a {bound[key]}, not a {describe(value)}")
    problem = unstorable_text(value)
    if problem:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"State key '{key}' cannot be stored: {problem}")
    return await _apply_direct(PanelRef.of(panel), definition, [{"key": key, "value": value, "operation": "set"}])


@in_worker
def _apply_direct(ref: PanelRef, definition: PanelDefinition, mutations: list[dict[str, Any]]) -> Commit:
    try:
        with local_lock(ref.pk), transaction.atomic():
            state, version = read_state(ref.pk, lock=True)
            return apply_batch(ref, definition, state, version, None, None, mutations)
    except BatchRefused as failed:
        raise ServiceError(ErrorCode.INVALID_REQUEST, failed.error["message"]) from None
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database unavailable while changing %s: %s", ref, exc)
        raise ServiceError(ErrorCode.UNAVAILABLE, "Database unavailable") from None


async def reset_state(panel: Panel) -> Commit:
    """Back to the declared defaults, as one committed change that clients see as a PATCH."""
    definition = await adefinition_of(panel)
    defaults = definition.initial_state()
    mutations = [{"key": k, "value": v, "operation": "set"} for k, v in defaults.items()]
    mutations += [{"key": k, "operation": "delete"} for k in panel.state
                  if k not in defaults and k not in computed_names(definition)]
    return await _apply_direct(PanelRef.of(panel), definition, mutations)
