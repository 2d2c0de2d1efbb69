"""The one place where panels are created, run, changed and deleted.

REST views, WebSocket consumers, the admin and management commands all call this module.
A handler runs in segments: from its start (or a resume) to its next suspension or its end.
Each segment runs while the panel's row is locked, so executions on one panel never
interleave, and its batch of mutations is applied in the same transaction: re-checked
against the capabilities, type-checked, Computed keys recomputed, the state version bumped,
published to every client, committed. A failed segment writes nothing.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from nexus import lifecycle
from runtime import ExecutionContext, ExecutionResult
from runtime.capabilities import CapabilitySet
from runtime.errors import RuntimeBusyError
from runtime.execution import capability_set
from workspaces.models import AuditOutcome, AuditRecord, Panel, PanelStatus, RunKind, Workspace
from workspaces.nxml import NXMLValidationError, PanelDefinition, parse_nxml
from workspaces.services import activity, catalog, panel_rows, schedules
from workspaces.services import extensions as extension_service
from workspaces.services.publish import commit_message, publish
from workspaces.services.sandbox import check_syntax, get_runtime
from workspaces.services.values import describe, matches_type, unstorable_text

logger = logging.getLogger("nexus.panels")

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]


class ServiceError(Exception):
    """A refusal with an API error code (see workspaces.api.errors.STATUS_CODES)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class _SegmentFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


@dataclass
class Commit:
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


_executor: ThreadPoolExecutor | None = None


def _segment_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.NEXUS.MAX_INSTANCES + 4, thread_name_prefix="nexus-exec"
        )
    return _executor


def shutdown_workers() -> None:
    """Let the worker threads finish and end (their database connections close with them)."""
    global _executor
    executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=True)
    activity.shutdown()
    # A thread's connection wrapper sits in reference cycles: collect it now, which closes it.
    gc.collect()


def in_worker(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run blocking database and sandbox work off the event loop, in its own thread pool."""
    built: tuple[ThreadPoolExecutor, Callable[..., Awaitable[Any]]] | None = None

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal built
        executor = _segment_executor()
        if built is None or built[0] is not executor:  # built once per pool, not per call
            built = (executor, database_sync_to_async(func, thread_sensitive=False, executor=executor))
        return await built[1](*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------- definitions


# Only what a segment needs: the big source and parsed tree stay in the database.
HOT_FIELDS = ("id", "panel_id", "status", "state", "state_version", "definition_hash", "workspace__slug")
_definitions: dict[str, PanelDefinition] = {}
_definitions_guard = threading.Lock()
MAX_CACHED_DEFINITIONS = 512


def definition_digest(tree: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def definition_of(panel: Panel) -> PanelDefinition:
    """The parsed tree of a panel, cached by its digest (loaded from the row only on a miss)."""
    digest = panel.definition_hash
    cached = _definitions.get(digest) if digest else None
    if cached is not None:
        return cached
    tree = panel.definition if "definition" in panel.__dict__ else Panel.objects.values_list(
        "definition", flat=True).get(pk=panel.pk)
    definition = PanelDefinition.from_dict(tree)
    with _definitions_guard:
        if len(_definitions) >= MAX_CACHED_DEFINITIONS:
            _definitions.clear()
        _definitions[digest or definition_digest(tree)] = definition
    return definition


async def adefinition_of(panel: Panel) -> PanelDefinition:
    """definition_of for async callers: a cache miss reads the database in a worker thread."""
    cached = _definitions.get(panel.definition_hash) if panel.definition_hash else None
    return cached if cached is not None else await in_worker(definition_of)(panel)


def hot_panels() -> Any:
    return Panel.objects.select_related("workspace").only(*HOT_FIELDS)


def parse_source(source: str) -> PanelDefinition:
    try:
        return parse_nxml(source, syntax_checker=check_syntax,
                          min_schedule_interval_s=settings.NEXUS.SCHEDULE_MIN_INTERVAL)
    except NXMLValidationError as exc:
        raise ServiceError(
            "INVALID_NXML",
            f"NXML has {len(exc.errors)} error(s)",
            {"errors": [error.to_dict() for error in exc.errors]},
        ) from None


def validate_source(source: str) -> list[dict[str, Any]]:
    try:
        parse_source(source)
    except ServiceError as exc:
        return list(exc.details["errors"])
    return []


# ---------------------------------------------------------------- applying a batch


def _check_mutation(definition: PanelDefinition, capabilities: CapabilitySet | None, mutation: dict[str, Any]) -> None:
    key = mutation.get("key")
    if not isinstance(key, str):
        raise _SegmentFailed({"code": "EXECUTION_ERROR", "message": "Mutation without a key"})
    if key in computed_names(definition):
        raise _SegmentFailed({"code": "PERMISSION_DENIED", "message": f"State key '{key}' is computed and read-only"})
    if capabilities is not None and not capabilities.can_write(key):
        raise _SegmentFailed({"code": "PERMISSION_DENIED", "message": f"No capability to write state key '{key}'"})
    state_type = state_types(definition).get(key)
    if state_type is None and mutation.get("operation") == "delete":
        return
    if state_type is None:
        raise _SegmentFailed({"code": "EXECUTION_ERROR", "message": f"State key '{key}' is not declared in <Data>"})
    if mutation.get("operation") == "set":
        value = mutation.get("value")
        problem = unstorable_text(value)
        if problem:
            message = f"State key '{key}' cannot be stored: {problem}"
            raise _SegmentFailed({"code": "EXECUTION_ERROR", "message": message})
        if value is not None and not matches_type(state_type, value):
            raise _SegmentFailed(
                {
                    "code": "EXECUTION_ERROR",
                    "message": f"State key '{key}' is a {state_type}, not a {describe(value)}",
                }
            )


def _check_event(capabilities: CapabilitySet | None, event: dict[str, Any]) -> None:
    if capabilities is not None and not capabilities.can_emit(str(event.get("name"))):
        raise _SegmentFailed({"code": "PERMISSION_DENIED", "message": f"No capability to emit '{event.get('name')}'"})


def _check_view_command(capabilities: CapabilitySet | None, command: dict[str, Any]) -> None:
    if capabilities is not None and not capabilities.can_update_view(str(command.get("componentId"))):
        raise _SegmentFailed(
            {"code": "PERMISSION_DENIED", "message": f"No capability to update view '{command.get('componentId')}'"}
        )


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
    )
    result = get_runtime().execute(_computed_program(definition), context)
    if result.status != "success" or not isinstance(result.return_value, dict):
        logger.warning("computed keys of %s failed: %s", definition.id, result.error)
        return dict.fromkeys(names)
    return {name: result.return_value.get(name) for name in names}


def sandbox_key(workspace_slug: str, panel_id: str) -> str:
    """The sandbox's notion of a panel: instances are reset whenever this changes."""
    return f"{workspace_slug}/{panel_id}"


@dataclass(frozen=True)
class PanelRef:
    """Which panel a batch goes to; enough to write its row and reach its clients."""

    pk: int
    workspace_slug: str
    panel_id: str

    @classmethod
    def of(cls, panel: Panel) -> PanelRef:
        return cls(panel.pk, panel.workspace.slug, panel.panel_id)


class _Conflict(Exception):
    """Another process committed to the panel after this segment read it."""


def _apply(
    ref: PanelRef,
    definition: PanelDefinition,
    state: dict[str, Any],
    version: int,
    result: ExecutionResult | None,
    capabilities: CapabilitySet | None,
    mutations: list[dict[str, Any]] | None = None,
) -> Commit:
    """Check, store and publish one batch; must run inside a transaction. Raises _SegmentFailed."""
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
        raise _Conflict()
    # Published before the transaction ends, while no other writer can commit to this panel.
    publish(ref.workspace_slug, ref.panel_id, commit_message(version + 1, applied, events, view_commands))
    return Commit(state, version + 1, applied, events, view_commands)


def _read(panel_pk: int, lock: bool) -> tuple[dict[str, Any], int]:
    row = panel_rows.read_state(panel_pk, lock=lock)
    if row is None:
        raise ServiceError("NOT_FOUND", "Panel was deleted")
    return row


OPTIMISTIC_ATTEMPTS = 8
_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()

Step = Callable[[dict[str, Any]], ExecutionResult]
SegmentOutcome = tuple[ExecutionResult, Commit | None, dict[str, Any] | None]


def _local_lock(panel_pk: int) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(panel_pk, threading.Lock())


def _run_segment(run: HandlerRun, step: Step, repeatable: bool) -> SegmentOutcome:
    """Execute one segment exclusively and apply its batch; returns (result, commit, failure).

    PostgreSQL locks only the panel's row, so the segment runs under that lock. SQLite has one
    writer for the whole database: holding it while a slow handler runs would stall every other
    panel, so a segment that can be run again (one that starts a handler) runs unlocked on the
    state it read and commits only if no other process changed the panel meanwhile, else runs
    again; its last attempt, and every resumed segment, hold the lock throughout.
    """
    try:
        with _local_lock(run.panel_pk):
            if repeatable and connection.vendor == "sqlite":
                for _ in range(OPTIMISTIC_ATTEMPTS - 1):
                    outcome = _optimistic_segment(run, step)
                    if outcome is not None:
                        return outcome
            return _locked_segment(run, step)
    except RuntimeBusyError as exc:
        raise ServiceError("RUNTIME_BUSY", str(exc) or "All sandbox instances are busy") from None
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database unavailable during %s: %s", run.handler_name, exc)
        raise ServiceError("UNAVAILABLE", "Database unavailable") from None


def _optimistic_segment(run: HandlerRun, step: Step) -> SegmentOutcome | None:
    """None when another process committed to the panel while this segment ran."""
    state, version = _read(run.panel_pk, lock=False)
    result = step(state)
    if result.status == "error":
        return result, _unchanged(state, version), _error_of(result)
    try:
        with transaction.atomic():
            return _commit_segment(run, state, version, result)
    except _Conflict:
        _abandon(result)
        return None


def _locked_segment(run: HandlerRun, step: Step) -> SegmentOutcome:
    with transaction.atomic():
        state, version = _read(run.panel_pk, lock=True)
        result = step(state)
        if result.status == "error":
            return result, _unchanged(state, version), _error_of(result)
        return _commit_segment(run, state, version, result)


def _commit_segment(run: HandlerRun, state: dict[str, Any], version: int, result: ExecutionResult) -> SegmentOutcome:
    """Apply inside the caller's transaction; a refused batch leaves the row untouched."""
    ref = PanelRef(run.panel_pk, run.workspace_slug, run.panel_id)
    try:
        commit = _apply(ref, run.definition, state, version, result, capability_set(tuple(run.capabilities)))
    except _SegmentFailed as failed:
        return result, _unchanged(state, version), failed.error
    return result, commit, None


def _error_of(result: ExecutionResult) -> dict[str, Any] | None:
    return None if result.error is None else dict(result.error)


def _unchanged(state: dict[str, Any], version: int) -> Commit:
    """A failed segment commits nothing: the panel stays at the version it read."""
    return Commit(state, version)


def _context(run: HandlerRun, state: dict[str, Any]) -> ExecutionContext:
    return ExecutionContext(
        panel_id=sandbox_key(run.workspace_slug, run.panel_id),
        handler_name=run.handler_name,
        state=state,
        args=run.args,
        capabilities=run.capabilities,
        scope=run.scope,
        extensions=extension_service.methods_for(run.definition),
    )


def _audit_failure(run: HandlerRun, error: dict[str, Any]) -> None:
    if error.get("code") != "PERMISSION_DENIED":
        return
    AuditRecord.record(
        workspace=run.workspace_slug,
        panel=run.panel_id,
        handler=run.handler_name,
        user=run.actor,
        action="capability",
        resource=str(error.get("resource") or ""),
        outcome=AuditOutcome.DENIED,
        reason=str(error.get("message", "")),
    )


def _abandon(result: ExecutionResult) -> None:
    if result.status == "suspended" and result.suspension:
        get_runtime().cancel(result.suspension["suspension_id"])


@in_worker
def _segment(run: HandlerRun, resume: dict[str, Any] | None) -> tuple[ExecutionResult, Commit | None, Any]:
    runtime = get_runtime()
    if resume is None:
        def step(state: dict[str, Any]) -> ExecutionResult:
            return runtime.execute(run.code, _context(run, state))
    else:
        def step(state: dict[str, Any]) -> ExecutionResult:
            return runtime.resume(resume["suspension_id"], ok=resume["ok"], value=resume.get("value"),
                                  error=resume.get("error"), state=state)
    result, commit, failure = _run_segment(run, step, repeatable=resume is None)
    if failure is not None:
        _abandon(result)
        _audit_failure(run, failure)
    return result, commit, failure


async def execute(run: HandlerRun, on_progress: ProgressCallback | None = None) -> Outcome:
    outcome = Outcome()
    started_at, started = timezone.now(), time.perf_counter()
    with lifecycle.tracked_execution():
        result, commit, failure = await _segment(run, None)
        logs = list(result.logs)
        while failure is None and result.status == "suspended":
            outcome.absorb(commit)
            if on_progress is not None:
                await on_progress(_progress(result, commit))
            resume = await extension_service.perform(run, result.suspension or {})
            result, commit, failure = await _segment(run, resume)
            logs.extend(result.logs)
    outcome.absorb(commit)
    if failure is not None:
        outcome.status = "error"
        outcome.error = failure
    else:
        outcome.return_value = result.return_value
    activity.submit(activity.FinishedRun(
        panel_pk=run.panel_pk, panel=f"{run.workspace_slug}/{run.panel_id}", kind=run.kind,
        handler=run.handler_name, actor=run.actor, started_at=started_at, status=outcome.status,
        duration_ms=(time.perf_counter() - started) * 1000, error=outcome.error, logs=logs,
    ))
    logger.info(
        "handler %s on %s/%s: %s",
        run.handler_name,
        run.workspace_slug,
        run.panel_id,
        outcome.status,
        extra={
            "panel": f"{run.workspace_slug}/{run.panel_id}",
            "handler": run.handler_name,
            "status": outcome.status,
            "code": (outcome.error or {}).get("code"),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return outcome


def _progress(result: ExecutionResult, commit: Commit | None) -> dict[str, Any]:
    suspension: Mapping[str, Any] = result.suspension or {}
    return {
        "status": "executing",
        "message": f"Waiting for {suspension.get('extension')}.{suspension.get('method')}",
        "mutations": commit.mutations if commit else [],
        "stateVersion": commit.state_version if commit else None,
    }


# ---------------------------------------------------------------- public operations


def get_panel(workspace: Workspace | str, panel_id: str) -> Panel:
    slug = workspace if isinstance(workspace, str) else workspace.slug
    try:
        return Panel.objects.select_related("workspace").get(workspace__slug=slug, panel_id=panel_id)
    except Panel.DoesNotExist:
        raise ServiceError("NOT_FOUND", f"Panel '{panel_id}' not found") from None


def check_args(definition: PanelDefinition, tool_name: str, args: Any) -> dict[str, Any]:
    tool = definition.tool(tool_name)
    if tool is None:
        raise ServiceError("TOOL_NOT_FOUND", f"Tool '{tool_name}' not found")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ServiceError("INVALID_ARGS", "args must be an object")
    declared = {arg.name: arg for arg in tool.args}
    problems = [f"unknown argument '{name}'" for name in args if name not in declared]
    checked: dict[str, Any] = {}
    for name, arg in declared.items():
        if name in args:
            if not matches_type(arg.type, args[name]):
                problems.append(f"argument '{name}' must be a {arg.type}, not a {describe(args[name])}")
            checked[name] = args[name]
        elif arg.required:
            problems.append(f"missing required argument '{name}'")
        elif arg.default is not None:
            checked[name] = arg.default
    problem = unstorable_text(args)
    if problem:
        problems.append(f"arguments cannot be used: {problem}")
    if problems:
        raise ServiceError("INVALID_ARGS", "; ".join(problems), {"problems": problems})
    return checked


def _handler_run(panel: Panel, definition: PanelDefinition, name: str, code: str, caps: list[str],
                 args: dict[str, Any], scope: dict[str, Any] | None, actor: str,
                 kind: str = RunKind.TOOL) -> HandlerRun:
    return HandlerRun(
        panel_pk=panel.pk,
        workspace_slug=panel.workspace.slug,
        panel_id=panel.panel_id,
        definition=definition,
        handler_name=name,
        code=code,
        capabilities=caps,
        args=args,
        scope=scope,
        actor=actor,
        kind=kind,
    )


async def run_tool(
    panel: Panel,
    tool_name: str,
    args: Any = None,
    scope: Any = None,
    actor: str = "",
    on_progress: ProgressCallback | None = None,
) -> Outcome:
    if lifecycle.is_draining():
        raise ServiceError("UNAVAILABLE", "Server is shutting down")
    if panel.status == PanelStatus.STOPPED:
        raise ServiceError("INVALID_REQUEST", f"Panel '{panel.panel_id}' is stopped")
    if scope is not None and not isinstance(scope, dict):
        raise ServiceError("INVALID_REQUEST", "scope must be an object")
    definition = await adefinition_of(panel)
    checked = check_args(definition, tool_name, args)
    tool = definition.tool(tool_name)
    assert tool is not None
    run = _handler_run(panel, definition, tool_name, tool.handler.code,
                       definition.tool_capabilities(tool_name), checked, scope, actor)
    return await execute(run, on_progress)


async def run_lifecycle(panel: Panel, event: str, actor: str = "") -> Outcome | None:
    definition = await adefinition_of(panel)
    handler = definition.lifecycle.get(event)
    if handler is None:
        return None
    caps = definition.lifecycle_capabilities(event)
    return await execute(_handler_run(panel, definition, event, handler.code, caps, {}, None, actor,
                                      RunKind.LIFECYCLE))


# Paths under /panels/ that are not panels.
RESERVED_PANEL_IDS = frozenset({"validate"})


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
                     extension_config: dict[str, Any], overrides: dict[str, Any] | None = None) -> Panel:
    tree = definition.to_dict()
    initial = definition.initial_state()
    initial.update(overrides or {})
    initial.update(compute(definition, initial, sandbox_key(workspace.slug, panel_id or definition.id or "new")))
    try:
        with transaction.atomic():
            locked = Workspace.objects.select_for_update().get(pk=workspace.pk)
            panel_id = panel_id or _default_panel_id(locked, definition)
            if Panel.objects.filter(workspace=locked, panel_id=panel_id).exists():
                raise ServiceError("PANEL_EXISTS", f"Panel '{panel_id}' already exists")
            if Panel.objects.filter(workspace=locked).count() >= locked.panel_limit:
                raise ServiceError("MAX_PANELS", f"Workspace '{locked.slug}' already has {locked.panel_limit} panels",
                                   {"maxPanels": locked.panel_limit})
            panel = Panel.objects.create(
                workspace=locked, panel_id=panel_id, source=source, definition=tree,
                definition_hash=definition_digest(tree),
                title=definition.title or panel_id, version=definition.version or "",
                status=PanelStatus.INITIALIZING, state=initial, extension_config=extension_config,
            )
            schedules.sync(panel, definition)
            return panel
    except IntegrityError:
        raise ServiceError("PANEL_EXISTS", f"Panel '{panel_id}' already exists") from None


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
    if not isinstance(source, str) or not source.strip():
        raise ServiceError("INVALID_REQUEST", "source must be a non-empty NXML string")
    if extension_config is not None and not isinstance(extension_config, dict):
        raise ServiceError("INVALID_REQUEST", "extensions must be an object keyed by alias")
    problem = unstorable_text(source) or unstorable_text(extension_config)
    if problem:
        raise ServiceError("INVALID_REQUEST", f"The panel cannot be stored: {problem}")
    if panel_id in RESERVED_PANEL_IDS:
        raise ServiceError("INVALID_REQUEST", f"Panel id '{panel_id}' is reserved: the API uses that path")
    definition = await in_worker(parse_source)(source)
    _check_extension_aliases(definition, extension_config or {})
    overrides = _initial_overrides(definition, initial_state)
    panel = await _store_new_panel(workspace, source, definition, panel_id, extension_config or {}, overrides)
    outcome = await mount(panel, actor)
    return await _refresh(panel), outcome


def _initial_overrides(definition: PanelDefinition, initial_state: Any) -> dict[str, Any]:
    """Values that replace declared defaults at creation, each checked against its <State>."""
    if initial_state is None:
        return {}
    if not isinstance(initial_state, dict):
        raise ServiceError("INVALID_REQUEST", "initialState must be an object keyed by state name")
    for key, value in initial_state.items():
        state = definition.state(key)
        if state is None:
            raise ServiceError("INVALID_REQUEST", f"initialState names '{key[:64]}', which is not a declared <State>")
        if not matches_type(state.type, value):
            raise ServiceError("INVALID_REQUEST", f"initialState '{key}' is a {state.type}, not a {describe(value)}")
        problem = unstorable_text(value)
        if problem:
            raise ServiceError("INVALID_REQUEST", f"initialState '{key}' cannot be stored: {problem}")
    return dict(initial_state)


def _check_extension_aliases(definition: PanelDefinition, extension_config: dict[str, Any]) -> None:
    """Configuration for an alias the NXML does not declare would silently go unused."""
    declared = definition.extension_aliases()
    unknown = sorted(alias for alias in extension_config if alias not in declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ServiceError(
            "INVALID_REQUEST",
            f"extensions names {', '.join(repr(a) for a in unknown)}, which the NXML does not declare "
            f"(declared aliases: {known}); key the configuration by the alias of an <Extension>",
        )


async def set_value(panel: Panel, key: Any, value: Any, actor: str = "") -> Commit:
    if lifecycle.is_draining():
        raise ServiceError("UNAVAILABLE", "Server is shutting down")
    definition = await adefinition_of(panel)
    bound = definition.bound_keys()
    if not isinstance(key, str) or key not in bound:
        raise ServiceError("INVALID_REQUEST", f"State key '{key}' is not bound by an Input or Switch")
    if not matches_type(bound[key], value):
        raise ServiceError("INVALID_REQUEST", f"State key '{key}' is a {bound[key]}, not a {describe(value)}")
    problem = unstorable_text(value)
    if problem:
        raise ServiceError("INVALID_REQUEST", f"State key '{key}' cannot be stored: {problem}")
    return await _apply_direct(PanelRef.of(panel), definition, [{"key": key, "value": value, "operation": "set"}])


@in_worker
def _apply_direct(ref: PanelRef, definition: PanelDefinition, mutations: list[dict[str, Any]]) -> Commit:
    try:
        with _local_lock(ref.pk), transaction.atomic():
            state, version = _read(ref.pk, lock=True)
            return _apply(ref, definition, state, version, None, None, mutations)
    except _SegmentFailed as failed:
        raise ServiceError("INVALID_REQUEST", failed.error["message"]) from None
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database unavailable while changing %s: %s", ref, exc)
        raise ServiceError("UNAVAILABLE", "Database unavailable") from None


async def reset_state(panel: Panel) -> Commit:
    """Back to the declared defaults, as one committed change that clients see as a PATCH."""
    definition = await adefinition_of(panel)
    defaults = definition.initial_state()
    mutations = [{"key": k, "value": v, "operation": "set"} for k, v in defaults.items()]
    mutations += [{"key": k, "operation": "delete"} for k in panel.state
                  if k not in defaults and k not in computed_names(definition)]
    return await _apply_direct(PanelRef.of(panel), definition, mutations)


async def stop_panel(panel: Panel, actor: str = "") -> None:
    await run_lifecycle(panel, "unmount", actor)
    await _set_status(panel, PanelStatus.STOPPED)


async def delete_panel(panel: Panel, actor: str = "") -> None:
    if panel.status != PanelStatus.STOPPED:
        try:
            await run_lifecycle(panel, "unmount", actor)
        except ServiceError as exc:
            logger.warning("unmount of %s failed: %s", panel, exc.message)
    await _delete(panel)
    await catalog.aannounce(panel.workspace.slug, panel.panel_id)


@in_worker
def _delete(panel: Panel) -> None:
    Panel.objects.filter(pk=panel.pk).delete()
    # The same ordered path as unmount's events, so its sockets see those before they close (4404).
    publish(panel.workspace.slug, panel.panel_id, {"type": "panel.deleted"})


async def update_source(panel: Panel, source: str) -> Panel:
    """Replace a panel's NXML (admin edit); state keys that still exist keep their values."""
    definition = await in_worker(parse_source)(source)
    return await _store_source(panel, source, definition)


@in_worker
def _store_source(panel: Panel, source: str, definition: PanelDefinition) -> Panel:
    with transaction.atomic():
        locked = Panel.objects.select_for_update(of=("self",)).select_related("workspace").get(pk=panel.pk)
        state = definition.initial_state()
        state.update({k: v for k, v in locked.state.items() if k in state})
        state.update(compute(definition, state, sandbox_key(locked.workspace.slug, locked.panel_id)))
        locked.source = source
        locked.definition = definition.to_dict()
        locked.definition_hash = definition_digest(locked.definition)
        locked.title = definition.title or locked.panel_id
        locked.version = definition.version or ""
        locked.state = state
        locked.state_version += 1
        locked.save()
        schedules.sync(locked, definition)
        mutations = [{"key": k, "value": v, "operation": "set"} for k, v in state.items()]
        publish(locked.workspace.slug, locked.panel_id, commit_message(locked.state_version, mutations, [], []))
        announce_change(locked)
        return locked
