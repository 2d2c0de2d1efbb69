"""A panel's source replaced in place: checked, stored as a revision, its state migrated, its clients told.

Every face that changes a panel's NXML (REST PATCH and restore, the admin, ``nexus_panel import
--replace``) calls ``update_source`` or ``restore_revision``. The mount handler does not run again;
an ``update`` lifecycle handler runs after the new source is committed, when the source declares one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from workspaces.models import Panel
from workspaces.nxml import PanelDefinition
from workspaces.services import schedules
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import revisions
from workspaces.services.panels.computed import compute, sandbox_key
from workspaces.services.panels.definitions import definition_digest, parse_source
from workspaces.services.panels.errors import ServiceError
from workspaces.services.panels.execution import run_lifecycle
from workspaces.services.panels.lifecycle import announce_change
from workspaces.services.panels.migration import StateMigration, migrate_state
from workspaces.services.panels.records import Outcome
from workspaces.services.panels.workers import in_worker
from workspaces.services.publish import commit_message, publish
from workspaces.services.values import unstorable_text

UPDATE_EVENT = "update"
MAX_MESSAGE_LENGTH = 500


@dataclass(slots=True)
class SourceUpdate:
    """What an update did: the panel as committed, its revision, and the state migration."""

    panel: Panel
    revision: int
    created: bool  # False when the source was the current revision's already
    migration: dict[str, list[str]] = field(default_factory=dict)
    update_outcome: Outcome | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "ok",
            "revision": self.revision,
            "created": self.created,
            "migration": self.migration,
            "state": self.panel.state,
            "stateVersion": self.panel.state_version,
        }
        if self.update_outcome is not None and self.update_outcome.status == "error":
            body["updateError"] = self.update_outcome.error
        return body


def definition_frame(definition: PanelDefinition, revision: int, title: str) -> dict[str, Any]:
    """What an open page needs to draw the new definition (sent as the DEFINITION frame)."""
    return {
        "revision": revision,
        "title": title,
        "view": definition.view_tree(),
        "tools": [
            {"name": tool.name, "description": tool.description, "argsSchema": tool.args_schema()}
            for tool in definition.tools
        ],
    }


def _check_request(source: Any, message: Any, base_revision: Any) -> None:
    if not isinstance(source, str) or not source.strip():
        raise ServiceError(ErrorCode.INVALID_REQUEST, "source must be a non-empty NXML string")
    problem = unstorable_text(source)
    if problem:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"The source cannot be stored: {problem}")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_LENGTH or unstorable_text(message):
        raise ServiceError(ErrorCode.INVALID_REQUEST,
                           f"message must be text of at most {MAX_MESSAGE_LENGTH} characters")
    if base_revision is not None and (isinstance(base_revision, bool) or not isinstance(base_revision, int)
                                      or base_revision < 1):
        raise ServiceError(ErrorCode.INVALID_REQUEST, "baseRevision must be a revision number (1 or more)")


async def update_source(panel: Panel, source: str, *, actor: str = "", message: str = "",
                        base_revision: int | None = None) -> SourceUpdate:
    """Replace the panel's NXML; invalid NXML or a stale ``base_revision`` changes nothing.

    A source equal to the current revision's stores nothing and answers that revision.
    """
    _check_request(source, message, base_revision)
    definition = await in_worker(parse_source)(source)
    update = await _store(panel, source, definition, actor, message, base_revision)
    if update.created and UPDATE_EVENT in definition.lifecycle:
        update.update_outcome = await run_lifecycle(update.panel, UPDATE_EVENT, actor)
        update.panel = await _reloaded(update.panel)
    return update


async def restore_revision(panel: Panel, number: int, *, actor: str = "", message: str = "") -> SourceUpdate:
    """A new revision with the source of revision ``number`` (the state migrates as for any update)."""
    old = await in_worker(revisions.get_revision)(panel, number)
    return await update_source(panel, old.source, actor=actor, message=message or f"Restored revision {number}")


@in_worker
def _reloaded(panel: Panel) -> Panel:
    workspace = panel.workspace
    panel.refresh_from_db()
    panel.workspace = workspace
    return panel


def _mutations(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    changed = [{"key": k, "value": v, "operation": "set"} for k, v in after.items()
               if k not in before or before[k] != v or type(before[k]) is not type(v)]
    return changed + [{"key": k, "operation": "delete"} for k in before if k not in after]


def _conflict(base_revision: int, current: int) -> ServiceError:
    return ServiceError(
        ErrorCode.REVISION_CONFLICT,
        f"The panel is at revision {current}, not {base_revision}: someone saved since; "
        "reload it and apply your change again",
        {"currentRevision": current, "baseRevision": base_revision},
    )


@in_worker
def _store(panel: Panel, source: str, definition: PanelDefinition, actor: str, message: str,
           base_revision: int | None) -> SourceUpdate:
    with transaction.atomic():
        locked = Panel.objects.select_for_update(of=("self",)).select_related("workspace").get(pk=panel.pk)
        head = revisions.current(locked)
        if head.content_hash == revisions.content_hash(source):
            return SourceUpdate(locked, head.number, False, StateMigration(state={}).summary())
        if base_revision is not None and base_revision != head.number:
            raise _conflict(base_revision, head.number)
        migration = migrate_state(PanelDefinition.from_dict(locked.definition), definition, locked.state)
        state = migration.state
        state.update(compute(definition, state, sandbox_key(locked.workspace.slug, locked.panel_id)))
        mutations = _mutations(locked.state, state)
        revision = revisions.record(locked, source, actor, message, head.number + 1)
        _apply(locked, source, definition, state, bump=bool(mutations))
        schedules.sync(locked, definition)
        commit = commit_message(locked.state_version, mutations, [], [])
        commit["definition"] = definition_frame(definition, revision.number, locked.title)
        publish(locked.workspace.slug, locked.panel_id, commit)
        # Consumers reload the panel on this; before the commit they would read the old definition.
        transaction.on_commit(lambda: announce_change(locked))
        return SourceUpdate(locked, revision.number, True, migration.summary())


def _apply(panel: Panel, source: str, definition: PanelDefinition, state: dict[str, Any], bump: bool) -> None:
    panel.source = source
    panel.definition = definition.to_dict()
    panel.definition_hash = definition_digest(panel.definition)
    panel.title = definition.title or panel.panel_id
    panel.version = definition.version or ""
    panel.state = state
    if bump:
        panel.state_version += 1
    panel.save()
