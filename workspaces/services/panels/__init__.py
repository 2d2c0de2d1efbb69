"""The one place where panels are created, run, changed and deleted.

REST views, WebSocket consumers, the admin and management commands all call the names below;
the modules of this package are its implementation:

- ``lifecycle``: create_panel, mount, stop_panel, delete_panel, get_panel
- ``updates``: update_source, restore_revision (the NXML replaced in place, a new revision)
- ``revisions`` and ``migration``: stored sources and the state carried over to a new source
- ``execution``: run_tool, run_lifecycle, execute, check_args
- ``state``: set_value, reset_state
- ``segments``: one runtime call (a handler's start or a resume) and the transaction around it
- ``batches``: a batch of mutations re-checked, stored and published
- ``computed``: the <Computed> keys, recomputed with every change (compute, for previews too)
- ``definitions``: NXML parsing and the cache of parsed definitions
- ``workers``: in_worker, the hop from the event loop to the service's thread pool
- ``records`` and ``errors``: the values and refusals passed across this surface

A handler runs in segments: from its start (or a resume) to its next suspension or its end.
Each segment's batch is applied in one transaction with the panel's row as it read it:
re-checked against the capabilities, type-checked, Computed keys recomputed, the state version
bumped, published to every client, committed. A failed segment writes nothing.
"""

from workspaces.services.panels.computed import compute, sandbox_key
from workspaces.services.panels.definitions import (
    adefinition_of,
    definition_of,
    hot_panels,
    parse_source,
    validate_source,
)
from workspaces.services.panels.errors import ServiceError
from workspaces.services.panels.execution import check_args, execute, run_lifecycle, run_tool
from workspaces.services.panels.lifecycle import (
    RESERVED_PANEL_IDS,
    announce_change,
    create_panel,
    delete_panel,
    get_panel,
    mount,
    stop_panel,
)
from workspaces.services.panels.records import Commit, HandlerRun, Outcome, PanelRef, ProgressCallback
from workspaces.services.panels.state import reset_state, set_value
from workspaces.services.panels.updates import SourceUpdate, restore_revision, update_source
from workspaces.services.panels.workers import in_worker, shutdown_workers

__all__ = [
    "RESERVED_PANEL_IDS",
    "Commit",
    "HandlerRun",
    "Outcome",
    "PanelRef",
    "ProgressCallback",
    "ServiceError",
    "SourceUpdate",
    "adefinition_of",
    "announce_change",
    "check_args",
    "compute",
    "create_panel",
    "definition_of",
    "delete_panel",
    "execute",
    "get_panel",
    "hot_panels",
    "in_worker",
    "mount",
    "parse_source",
    "reset_state",
    "restore_revision",
    "run_lifecycle",
    "run_tool",
    "sandbox_key",
    "set_value",
    "shutdown_workers",
    "stop_panel",
    "update_source",
    "validate_source",
]
