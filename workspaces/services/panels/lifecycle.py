"""A panel's life: created and mounted, stopped, deleted; and who is told (updates.py replaces its NXML)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from workspaces.models import Panel, PanelStatus, Workspace
from workspaces.nxml import PanelDefinition
from workspaces.services import activity, catalog, schedules
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import revisions
from workspaces.services.panels.computed import compute, sandbox_key
from workspaces.services.panels.definitions import definition_digest, parse_source
from workspaces.services.panels.errors import ServiceError
from workspaces.services.panels.execution import run_lifecycle
from workspaces.services.panels.records import Outcome
from workspaces.services.panels.workers import in_worker
from workspaces.services.publish import publish
from workspaces.services.values import describe, matches_type, unstorable_text

logger = logging.getLogger("nexus.panels")

def get_panel(workspace: Workspace | str, panel_id: str) -> Panel:
    """A workspace's panel by id, with its workspace; NOT_FOUND when there is none."""
    slug = workspace if isinstance(workspace, str) else workspace.slug
    try:
        return Panel.objects.select_related("workspace").get(workspace__slug=slug, panel_id=panel_id)
    except Panel.DoesNotExist:
        raise ServiceError(ErrorCode.NOT_FOUND, f"Panel '{panel_id}' not found") from None


# Paths under /panels/ that are not panels: the API's validate, the pages' new panel.
RESERVED_PANEL_IDS = frozenset({"validate", "new"})


def _new_panel_id(definition: PanelDefinition) -> str:
    base = "".join(ch for ch in (definition.id or "panel") if ch.isalnum() or ch in "_-")[:50] or "panel"
    return f"{base}-{secrets.token_hex(3)}"


def _default_panel_id(workspace: Workspace, definition: PanelDefinition) -> str:
    """The document's own id while no panel of the workspace has it, else that id with a suffix."""
    own = definition.id
    if own and own not in RESERVED_PANEL_IDS and not Panel.objects.filter(workspace=workspace, panel_id=own).exists():
        return own
    return _new_panel_id(definition)


@in_worker
def _store_new_panel(workspace: Workspace, source: str, definition: PanelDefinition, panel_id: str | None,
                     extension_config: dict[str, Any], overrides: dict[str, Any] | None = None,
                     actor: str = "") -> Panel:
    tree = definition.to_dict()
    initial = definition.initial_state()
    initial.update(overrides or {})
    initial.update(compute(definition, initial, sandbox_key(workspace.slug, panel_id or definition.id or "new")))
    try:
        with transaction.atomic():
            locked = Workspace.objects.select_for_update().get(pk=workspace.pk)
            panel_id = panel_id or _default_panel_id(locked, definition)
            if Panel.objects.filter(workspace=locked, panel_id=panel_id).exists():
                raise ServiceError(ErrorCode.PANEL_EXISTS, f"Panel '{panel_id}' already exists")
            if Panel.objects.filter(workspace=locked).count() >= locked.panel_limit:
                limit = locked.panel_limit
                raise ServiceError(ErrorCode.MAX_PANELS, f"Workspace '{locked.slug}' already has {limit} panels",
                                   {"maxPanels": limit})
            panel = Panel.objects.create(
                workspace=locked, panel_id=panel_id, source=source, definition=tree,
                definition_hash=definition_digest(tree),
                title=definition.title or panel_id, version=definition.version or "",
                status=PanelStatus.INITIALIZING, state=initial, extension_config=extension_config,
            )
            revisions.record(panel, source, actor, "Created", number=1)
            schedules.sync(panel, definition)
            return panel
    except IntegrityError:
        raise ServiceError(ErrorCode.PANEL_EXISTS, f"Panel '{panel_id}' already exists") from None


@in_worker
def _set_status(panel: Panel, status: str, error: dict[str, Any] | None = None) -> None:
    Panel.objects.filter(pk=panel.pk).update(status=status, last_error=error, updated_at=timezone.now())
    panel.status = status
    panel.last_error = error
    announce_change(panel)


def announce_change(panel: Panel) -> None:
    """Tell the panel's consumers to reload it (its status or definition changed), and its workspace's listers."""
    publish(panel.workspace.slug, panel.panel_id, {"type": "panel.changed"})
    catalog.announce(panel.workspace.slug, panel.panel_id)


@in_worker
def _refresh(panel: Panel) -> Panel:
    workspace = panel.workspace
    panel.refresh_from_db()
    # refresh_from_db drops cached relations; async callers read panel.workspace without a query.
    panel.workspace = workspace
    return panel


async def mount(panel: Panel, actor: str = "") -> Outcome | None:
    """Run the panel's mount handler and mark it running, or in error when the handler failed."""
    outcome = await run_lifecycle(panel, "mount", actor)
    if outcome is not None and outcome.status == "error":
        await _set_status(panel, PanelStatus.ERROR, outcome.error)
    else:
        await _set_status(panel, PanelStatus.RUNNING, None)
    return outcome


async def create_panel(
    workspace: Workspace,
    source: Any,
    panel_id: str | None = None,
    extension_config: Any = None,
    actor: str = "",
    initial_state: Any = None,
) -> tuple[Panel, Outcome | None]:
    """Parse, store and mount a new panel; returns it with the outcome of its mount handler."""
    if not isinstance(source, str) or not source.strip():
        raise ServiceError(ErrorCode.INVALID_REQUEST, "source must be a non-empty NXML string")
    if extension_config is not None and not isinstance(extension_config, dict):
        raise ServiceError(ErrorCode.INVALID_REQUEST, "extensions must be an object keyed by alias")
    problem = unstorable_text(source) or unstorable_text(extension_config)
    if problem:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"The panel cannot be stored: {problem}")
    if panel_id in RESERVED_PANEL_IDS:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"Panel id '{panel_id}' is reserved: the API uses that path")
    definition = await in_worker(parse_source)(source)
    _check_extension_aliases(definition, extension_config or {})
    overrides = _initial_overrides(definition, initial_state)
    panel = await _store_new_panel(workspace, source, definition, panel_id, extension_config or {}, overrides, actor)
    outcome = await mount(panel, actor)
    return await _refresh(panel), outcome


def _initial_overrides(definition: PanelDefinition, initial_state: Any) -> dict[str, Any]:
    """Values that replace declared defaults at creation, each checked against its <State>."""
    if initial_state is None:
        return {}
    if not isinstance(initial_state, dict):
        raise ServiceError(ErrorCode.INVALID_REQUEST, "initialState must be an object keyed by state name")
    for key, value in initial_state.items():
        state = definition.state(key)
        if state is None:
            message = f"initialState names '{key[:64]}', which is not a declared <State>"
            raise ServiceError(ErrorCode.INVALID_REQUEST, message)
        if not matches_type(state.type, value):
            message = f"initialState '{key}' is a {state.type}, not a {describe(value)}"
            raise ServiceError(ErrorCode.INVALID_REQUEST, message)
        problem = unstorable_text(value)
        if problem:
            raise ServiceError(ErrorCode.INVALID_REQUEST, f"initialState '{key}' cannot be stored: {problem}")
    return dict(initial_state)


def _check_extension_aliases(definition: PanelDefinition, extension_config: dict[str, Any]) -> None:
    """Configuration for an alias the NXML does not declare would silently go unused."""
    declared = definition.extension_aliases()
    unknown = sorted(alias for alias in extension_config if alias not in declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ServiceError(
            ErrorCode.INVALID_REQUEST,
            f"extensions names {', '.join(repr(a) for a in unknown)}, which the NXML does not declare "
            f"(declared aliases: {known}); key the configuration by the alias of an <Extension>",
        )


async def stop_panel(panel: Panel, actor: str = "") -> None:
    """Run the panel's unmount handler and mark it stopped (tools are refused until it is started)."""
    await run_lifecycle(panel, "unmount", actor)
    await _set_status(panel, PanelStatus.STOPPED)


async def delete_panel(panel: Panel, actor: str = "") -> None:
    """Unmount the panel (if it runs) and delete it; its sockets are told and close."""
    if panel.status != PanelStatus.STOPPED:
        try:
            await run_lifecycle(panel, "unmount", actor)
        except ServiceError as exc:
            logger.warning("unmount of %s failed: %s", panel, exc.message)
    await _delete(panel)
    await catalog.aannounce(panel.workspace.slug, panel.panel_id)


@in_worker
def _delete(panel: Panel) -> None:
    # Runs of this panel still queued for the activity log (its unmount, say) are stored first:
    # a run row written while the delete cascades would fail the delete on PostgreSQL.
    activity.flush()
    Panel.objects.filter(pk=panel.pk).delete()
    # The same ordered path as unmount's events, so its sockets see those before they close (4404).
    publish(panel.workspace.slug, panel.panel_id, {"type": "panel.deleted"})
