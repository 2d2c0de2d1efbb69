"""What a caller hands to the runtime (ExecutionContext) and what it gets back (ExecutionResult)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Required, TypedDict

from .capabilities import CapabilitySet
from .errors import ErrorInfo

SUCCESS = "success"
ERROR = "error"
SUSPENDED = "suspended"

@functools.lru_cache(maxsize=512)
def capability_set(tokens: tuple[str, ...]) -> CapabilitySet:
    """Parsed capability sets, shared between contexts that carry the same tokens."""
    return CapabilitySet(tokens)


@dataclass(slots=True)
class ExecutionContext:
    """Everything one handler execution may see and do.

    ``capabilities`` are capability tokens (``state:read:KEY`` ..., see docs/nxml.md); ``extensions``
    maps each alias reachable as ``$ext.<alias>`` to the method names it offers; ``tenant``
    names the owner whose turn the execution takes when it waits for a sandbox (default: the panel).
    Malformed tokens raise ValueError here, before anything runs.
    """

    panel_id: str
    handler_name: str
    state: Mapping[str, Any]
    args: Mapping[str, Any]
    capabilities: Iterable[str]
    scope: Mapping[str, Any] | None = None
    extensions: Mapping[str, Iterable[str]] | None = None
    tenant: str | None = None
    capability_set: CapabilitySet = field(init=False, repr=False, compare=False)
    extension_methods: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    # Identifies the capability set and extension table as the guest caches them.
    grant_key: tuple[tuple[str, ...], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.panel_id, str) or not self.panel_id:
            raise TypeError("panel_id must be a non-empty string")
        if not isinstance(self.handler_name, str):
            raise TypeError("handler_name must be a string")
        if not isinstance(self.state, Mapping):
            raise TypeError("state must be a mapping of key to JSON value")
        if not isinstance(self.args, Mapping):
            raise TypeError("args must be a mapping of name to JSON value")
        if self.scope is not None and not isinstance(self.scope, Mapping):
            raise TypeError("scope must be a mapping or None")
        if isinstance(self.capabilities, str) or not isinstance(self.capabilities, Iterable):
            raise TypeError("capabilities must be a list of capability tokens")
        tokens = tuple(self.capabilities)
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"capability tokens are strings, got {token!r}")
        self.capabilities = list(tokens)
        self.capability_set = capability_set(tokens)
        self.extension_methods = _extension_methods(self.extensions)
        extensions_json = json.dumps(self.extension_methods, separators=(",", ":")) if self.extension_methods else "{}"
        self.grant_key = (tokens, extensions_json)


def _extension_methods(extensions: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    if extensions is None:
        return {}
    if not isinstance(extensions, Mapping):
        raise TypeError("extensions must map an alias to its method names")
    methods: dict[str, list[str]] = {}
    for alias, names in extensions.items():
        if not isinstance(alias, str) or not alias:
            raise TypeError("extension aliases are non-empty strings")
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise TypeError(f"extensions[{alias!r}] must be a list of method names")
        listed = list(names)
        if not all(isinstance(name, str) and name for name in listed):
            raise TypeError(f"extensions[{alias!r}] must hold non-empty method names")
        methods[alias] = listed
    return methods


class Mutation(TypedDict, total=False):
    """One change of ``$state``: ``value`` is there for a set."""

    key: Required[str]
    operation: Required[Literal["set", "delete"]]
    value: Any


class Event(TypedDict):
    name: str
    payload: Any


class ViewCommand(TypedDict):
    type: str  # setFilter, scrollTo or focus
    componentId: str
    args: dict[str, Any]


class LogLine(TypedDict):
    level: str
    message: str


class SuspensionInfo(TypedDict):
    """The extension call a suspended execution waits for; resume it by ``suspension_id``."""

    suspension_id: str
    extension: str
    method: str
    args: list[Any]


def _no_metrics() -> dict[str, Any]:
    return {"duration_us": 0, "memory_used_bytes": 0, "memory_peak_bytes": 0, "host_calls": 0, "cache_hit": False}


@dataclass(slots=True)
class ExecutionResult:
    """The outcome of one execution segment (a start or a resume).

    ``status`` is "success", "error" or "suspended". A suspended result carries
    ``suspension = {"suspension_id", "extension", "method", "args"}`` and the mutations,
    events and view commands made before the suspension. An error result carries
    ``error = {"code", "message", "stack"?, "location"?, "snippet"?}`` and nothing the
    segment changed.
    """

    status: str
    return_value: Any = None
    state_mutations: list[Mutation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    view_commands: list[ViewCommand] = field(default_factory=list)
    error: ErrorInfo | None = None
    suspension: SuspensionInfo | None = None
    metrics: dict[str, Any] = field(default_factory=_no_metrics)
    logs: list[LogLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "return_value": self.return_value,
            "state_mutations": self.state_mutations,
            "events": self.events,
            "view_commands": self.view_commands,
            "error": self.error,
            "suspension": self.suspension,
            "metrics": self.metrics,
            "logs": self.logs,
        }
