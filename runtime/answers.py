"""The guest's answers, converted to the public shapes and checked again on the host.

The glue checks capabilities and limits itself so that handlers get errors at the right
line; it is not trusted. Everything it reports is parsed here and checked against the
execution's CapabilitySet: an answer that fails comes from a guest that changed its glue,
and its instance is discarded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import protocol
from .capabilities import CapabilitySet
from .errors import ErrorCode, ErrorInfo, error_dict
from .execution import Event, ExecutionContext, LogLine, Mutation, ViewCommand
from .limits import MAX_EVENTS, MAX_RESULT_BYTES, MAX_STATE_MUTATIONS, byte_text
from .protocol import ANSWER_ERROR, ANSWER_OK, ANSWER_SUSPENDED

_MALFORMED = "the sandbox answer is malformed"
_VIEW_TYPES = frozenset({"setFilter", "scrollTo", "focus"})
_MEMO_LIMIT = 4096


class Checks:
    """Answers of one CapabilitySet, remembered: the same keys come back execution after execution."""

    __slots__ = ("can_emit", "can_update_view", "can_use_ext", "can_write")

    def __init__(self, caps: CapabilitySet) -> None:
        memo = functools.lru_cache(maxsize=_MEMO_LIMIT)
        self.can_write: Callable[[str], bool] = memo(caps.can_write)
        self.can_emit: Callable[[str], bool] = memo(caps.can_emit)
        self.can_update_view: Callable[[str], bool] = memo(caps.can_update_view)
        self.can_use_ext: Callable[[str], bool] = memo(caps.can_use_ext)


@functools.lru_cache(maxsize=1024)
def checks_for(caps: CapabilitySet) -> Checks:
    return Checks(caps)


@dataclass(slots=True)
class GuestAnswer:
    """One answer of the glue in the public shapes, checked against the execution's context."""

    kind: int
    return_value: Any = None
    mutations: list[Mutation] | None = None
    events: list[Event] | None = None
    views: list[ViewCommand] | None = None
    call: list[Any] | None = None
    error: ErrorInfo | None = None
    logs: list[LogLine] | None = None
    calls: int = 0
    discard: bool = False  # the instance must not be reused


def read_answer(answer: list[Any], ctx: ExecutionContext | None, max_calls: int) -> GuestAnswer:
    """Convert a glue answer; with a context, re-check it against the capabilities."""
    kind = answer[0]
    try:
        if kind == ANSWER_ERROR:
            error = answer[protocol.ERROR]
            if not isinstance(error, dict):
                error = error_dict(ErrorCode.INTERNAL_ERROR, "malformed error")
            logs, calls = _logs(answer[protocol.ERROR_LOGS]), _calls(answer[protocol.ERROR_API_CALLS])
            return GuestAnswer(kind, error=error, logs=logs, calls=calls)  # type: ignore[arg-type]
        raw_logs = answer[protocol.LOGS]
        read = GuestAnswer(kind, logs=_logs(raw_logs) if raw_logs else None, calls=_calls(answer[protocol.API_CALLS]))
        if kind == ANSWER_OK:
            read.return_value = answer[protocol.RETURN_VALUE]
        else:
            read.call = answer[protocol.CALL]
        if ctx is not None:
            problem = _recheck(answer, read, ctx, max_calls)
            if problem is not None:
                read.kind, read.error, read.discard = ANSWER_ERROR, problem, True
        return read
    except (IndexError, TypeError, ValueError, AttributeError):
        return GuestAnswer(ANSWER_ERROR, error=error_dict(ErrorCode.INTERNAL_ERROR, _MALFORMED), logs=[], discard=True)


def _recheck(answer: list[Any], read: GuestAnswer, ctx: ExecutionContext, max_calls: int) -> ErrorInfo | None:
    caps = checks_for(ctx.capability_set)
    problem: ErrorInfo | None = None
    if answer[protocol.MUTATIONS]:
        problem = _convert_mutations(answer[protocol.MUTATIONS], caps, read)
    if answer[protocol.EVENTS] and problem is None:
        problem = _convert_events(answer[protocol.EVENTS], caps, read)
    if answer[protocol.VIEWS] and problem is None:
        problem = _convert_views(answer[protocol.VIEWS], caps, read)
    if read.calls > max_calls and problem is None:
        problem = error_dict(ErrorCode.RESOURCE_LIMIT, f"more than {max_calls} sandbox API calls")
    if problem is None and read.kind == ANSWER_SUSPENDED:
        problem = _check_call(read.call, caps, ctx.extension_methods)
    return problem


def _too_many(raw: Any, limit: int, what: str) -> ErrorInfo | None:
    """A list of at most ``limit`` entries passes."""
    if type(raw) is not list:
        return error_dict(ErrorCode.INTERNAL_ERROR, _MALFORMED)
    if len(raw) > limit:
        return error_dict(ErrorCode.RESOURCE_LIMIT, f"more than {limit} {what}")
    return None


def _convert_mutations(raw: Any, caps: Checks, read: GuestAnswer) -> ErrorInfo | None:
    problem = _too_many(raw, MAX_STATE_MUTATIONS, "state mutations")
    if problem is not None:
        return problem
    mutations: list[Mutation] = []
    can_write = caps.can_write
    for entry in raw:
        if type(entry) is not list or not 1 <= len(entry) <= 2 or not isinstance(entry[0], str):
            return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed state mutation")
        key = entry[0]
        if not can_write(key):
            return _denied(f"state:write:{key}", f"changing $state.{key} needs the capability state:write:{key}")
        if len(entry) == 2:
            mutations.append({"key": key, "value": entry[1], "operation": "set"})
        else:
            mutations.append({"key": key, "operation": "delete"})
    read.mutations = mutations
    return None


def _convert_events(raw: Any, caps: Checks, read: GuestAnswer) -> ErrorInfo | None:
    problem = _too_many(raw, MAX_EVENTS, "events")
    if problem is not None:
        return problem
    events: list[Event] = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2 or not isinstance(entry[0], str):
            return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed event")
        name, payload = entry
        if not caps.can_emit(name):
            return _denied(f"events:emit:{name}", f"emitting {name!r} needs the capability events:emit:{name}")
        events.append({"name": name, "payload": payload})
    read.events = events
    return None


def _convert_views(raw: Any, caps: Checks, read: GuestAnswer) -> ErrorInfo | None:
    if type(raw) is not list:
        return error_dict(ErrorCode.INTERNAL_ERROR, _MALFORMED)
    views: list[ViewCommand] = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 3:
            return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed view command")
        kind, target, args = entry
        if kind not in _VIEW_TYPES or not isinstance(target, str) or not isinstance(args, dict):
            return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed view command")
        if not caps.can_update_view(target):
            message = f"updating view {target!r} needs the capability view:update:{target}"
            return _denied(f"view:update:{target}", message)
        views.append({"type": kind, "componentId": target, "args": args})
    read.views = views
    return None


def _check_call(call: Any, caps: Checks, extensions: dict[str, list[str]]) -> ErrorInfo | None:
    if not isinstance(call, list) or len(call) != 4 or not isinstance(call[protocol.CALL_ID], int):
        return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    alias, method, args = call[protocol.CALL_ALIAS], call[protocol.CALL_METHOD], call[protocol.CALL_ARGS]
    if not isinstance(alias, str) or not isinstance(method, str) or not isinstance(args, list):
        return error_dict(ErrorCode.INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    if not caps.can_use_ext(alias):
        return _denied(f"ext:{alias}", f"$ext.{alias} needs the capability ext:{alias}")
    if method not in extensions.get(alias, ()):
        return error_dict(ErrorCode.PERMISSION_DENIED, f"$ext.{alias}.{method} is not an available extension method")
    return None


def _denied(resource: str, message: str) -> ErrorInfo:
    return error_dict(ErrorCode.PERMISSION_DENIED, message, resource=resource)


def _calls(raw: Any) -> int:
    return raw if type(raw) is int and raw > 0 else 0


def _logs(raw: Any) -> list[LogLine]:
    if not raw or not isinstance(raw, list):
        return []
    return [
        {"level": str(entry[0]), "message": str(entry[1])}
        for entry in raw
        if isinstance(entry, list) and len(entry) == 2
    ]


_PARTS = (
    (protocol.MUTATIONS, "state write"),
    (protocol.EVENTS, "events"),
    (protocol.VIEWS, "view commands"),
    (protocol.LOGS, "logs"),
)
_ANSWER_PARTS = {
    ANSWER_OK: ((protocol.RETURN_VALUE, "return value"), *_PARTS),
    ANSWER_SUSPENDED: ((protocol.CALL, "extension call"), *_PARTS),
}


def oversize_error(answer: list[Any], size: int) -> ErrorInfo:
    """RESOURCE_LIMIT for an answer over MAX_RESULT_BYTES, naming its largest part as clients get it."""
    limit = byte_text(MAX_RESULT_BYTES)
    parts = []
    for index, name in _ANSWER_PARTS.get(answer[0], ()):
        try:
            parts.append((len(protocol.encode(answer[index])), name))
        except (IndexError, TypeError, ValueError, RecursionError):
            continue
    largest, name = max(parts, default=(0, ""))
    if largest > MAX_RESULT_BYTES:
        return error_dict(ErrorCode.RESOURCE_LIMIT, f"the {name} of {byte_text(largest)} is over the {limit} limit")
    return error_dict(ErrorCode.RESOURCE_LIMIT, f"the result of {byte_text(size)} is over the {limit} limit")
