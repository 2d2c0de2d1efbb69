"""Running a tool or lifecycle handler: argument checks, its segments, progress, and the record of the run."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from nexus import lifecycle
from runtime import ExecutionResult
from workspaces.models import Panel, PanelStatus, RunKind
from workspaces.nxml import PanelDefinition
from workspaces.services import activity, quotas, suspensions
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.definitions import adefinition_of
from workspaces.services.panels.errors import ServiceError
from workspaces.services.panels.records import Commit, HandlerRun, Outcome, ProgressCallback
from workspaces.services.panels.segments import run_segment
from workspaces.services.values import describe, matches_type, unstorable_text

logger = logging.getLogger("nexus.panels")

async def execute(run: HandlerRun, on_progress: ProgressCallback | None = None,
                  usage: quotas.ExecutionUsage | None = None, first: dict[str, Any] | None = None) -> Outcome:
    """Run a handler to its end, segment by segment, performing extension calls between them.

    ``usage``, when given, receives the sandbox time the segments took; ``first``, when given,
    resumes a handler taken over from another process instead of starting one.
    """
    outcome = Outcome()
    started_at, started = timezone.now(), time.perf_counter()
    with lifecycle.tracked_execution():
        try:
            result, commit, failure = await run_segment(run, first)
            _count_sandbox_time(usage, result)
            logs = list(result.logs)
            while failure is None and result.status == "suspended":
                outcome.absorb(commit)
                if on_progress is not None:
                    await on_progress(_progress(result, commit))
                with quotas.waiting(run.workspace_slug) if usage is not None else contextlib.nullcontext():
                    resume = await suspensions.perform(run, result.suspension or {})
                result, commit, failure = await run_segment(run, resume)
                _count_sandbox_time(usage, result)
                logs.extend(result.logs)
        except suspensions.Lost as lost:
            return _finished_elsewhere(run, outcome, lost)
        except BaseException:
            suspensions.release_soon(run)  # another pass (or process) finishes a stored handler
            raise
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


def _finished_elsewhere(run: HandlerRun, outcome: Outcome, lost: Exception) -> Outcome:
    """The handler is finished by another process: no run is recorded here."""
    logger.info("handler %s on %s/%s: %s", run.handler_name, run.workspace_slug, run.panel_id, lost)
    outcome.status = "error"
    outcome.error = {"code": ErrorCode.INTERRUPTED, "message": "The handler is being finished by another server"}
    return outcome


def _count_sandbox_time(usage: quotas.ExecutionUsage | None, result: ExecutionResult) -> None:
    if usage is not None:
        usage.sandbox_ms += (result.metrics.get("duration_us") or 0) / 1000


def _progress(result: ExecutionResult, commit: Commit | None) -> dict[str, Any]:
    suspension: Mapping[str, Any] = result.suspension or {}
    return {
        "status": "executing",
        "message": f"Waiting for {suspension.get('extension')}.{suspension.get('method')}",
        "mutations": commit.mutations if commit else [],
        "stateVersion": commit.state_version if commit else None,
    }


def check_args(definition: PanelDefinition, tool_name: str, args: Any) -> dict[str, Any]:
    """A tool's arguments checked against its declaration, with defaults filled in; INVALID_ARGS lists every problem."""
    tool = definition.tool(tool_name)
    if tool is None:
        raise ServiceError(ErrorCode.TOOL_NOT_FOUND, f"Tool '{tool_name}' not found")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ServiceError(ErrorCode.INVALID_ARGS, "args must be an object")
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
        raise ServiceError(ErrorCode.INVALID_ARGS, "; ".join(problems), {"problems": problems})
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
    """Run a panel's tool with these arguments; refusals (stopped panel, unknown tool, bad args, a workspace
    quota reached: ``quotas.QuotaExceeded``) raise ServiceError."""
    if lifecycle.is_draining():
        raise ServiceError(ErrorCode.UNAVAILABLE, "Server is shutting down")
    if panel.status == PanelStatus.STOPPED:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"Panel '{panel.panel_id}' is stopped")
    if scope is not None and not isinstance(scope, dict):
        raise ServiceError(ErrorCode.INVALID_REQUEST, "scope must be an object")
    definition = await adefinition_of(panel)
    checked = check_args(definition, tool_name, args)
    tool = definition.tool(tool_name)
    assert tool is not None
    run = _handler_run(panel, definition, tool_name, tool.handler.code,
                       definition.tool_capabilities(tool_name), checked, scope, actor)
    async with quotas.execution_slot(run.workspace_slug) as usage:
        return await execute(run, on_progress, usage)


async def run_lifecycle(panel: Panel, event: str, actor: str = "") -> Outcome | None:
    """Run the panel's handler for a lifecycle event (mount, unmount); None when it declares none."""
    definition = await adefinition_of(panel)
    handler = definition.lifecycle.get(event)
    if handler is None:
        return None
    caps = definition.lifecycle_capabilities(event)
    return await execute(_handler_run(panel, definition, event, handler.code, caps, {}, None, actor,
                                      RunKind.LIFECYCLE))
