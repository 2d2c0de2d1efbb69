"""The values the panel service passes around: runs, panel references, commits, outcomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workspaces.models import Panel, RunKind
from workspaces.nxml import PanelDefinition

if TYPE_CHECKING:
    from workspaces.services.suspensions import Waiting

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Commit:
    """A panel's state after one applied batch, with what the batch changed, emitted and commanded."""

    state: dict[str, Any]
    state_version: int
    mutations: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    view_commands: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    """What one handler run did, in the shape of the protocol's RESULT."""

    status: str = "success"
    mutations: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    view_commands: list[dict[str, Any]] = field(default_factory=list)
    return_value: Any = None
    error: dict[str, Any] | None = None
    state_version: int = 0

    def absorb(self, commit: Commit | None) -> None:
        if commit is not None:
            self.mutations.extend(commit.mutations)
            self.events.extend(commit.events)
            self.view_commands.extend(commit.view_commands)
            self.state_version = commit.state_version

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "mutations": self.mutations,
            "events": self.events,
            "viewCommands": self.view_commands,
            "returnValue": self.return_value,
            "stateVersion": self.state_version,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass
class HandlerRun:
    """One handler to run on one panel: its code, capabilities, arguments and who asked."""

    panel_pk: int
    workspace_slug: str
    panel_id: str
    definition: PanelDefinition
    handler_name: str
    code: str
    capabilities: list[str]
    args: dict[str, Any]
    scope: dict[str, Any] | None
    actor: str
    kind: str = RunKind.TOOL
    waiting: Waiting | None = None  # the stored row while the handler waits on an extension call


@dataclass(frozen=True)
class PanelRef:
    """Which panel a batch goes to; enough to write its row and reach its clients."""

    pk: int
    workspace_slug: str
    panel_id: str

    @classmethod
    def of(cls, panel: Panel) -> PanelRef:
        return cls(panel.pk, panel.workspace.slug, panel.panel_id)
