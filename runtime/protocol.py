"""The wire encoding between the host and the guest glue (guest/glue.js).

Requests and answers are positional JSON arrays, compact and ASCII-only on the way in:

    run     [handlerSlot, grantSlot, state, args | 0, {extra}?]    args 0: the previous ones again
    resume  [callId, ok, value, errorMessage, state | null, errorCode?]
    answers [0, returnValue, mutations, events, viewCommands, logs, apiCalls]   finished
            [1, error, logs, apiCalls]                                            failed
            [2, [callId, alias, method, args], mutations, events, views, logs, apiCalls]
            [3]                                    waiting: the stepper drains the jobs, then polls
    mutations [key, value] or [key] (delete); events [name, payload];
    view commands [type, componentId, args]; logs [level, message].

The keys of the run request's extra object are named below.
"""

from __future__ import annotations

import functools
import json
import secrets
from typing import TYPE_CHECKING, Any

from .capabilities import CapabilitySet, parse_capability

if TYPE_CHECKING:
    from .execution import ExecutionContext

# Keys of the extra object of a run request.
CODE = "c"  # handler code to compile into handlerSlot
LABEL = "n"  # the label of the block around the body (see compile in guest/glue.js)
CHECK_ONLY = "k"  # compile, answer, run nothing
CAPABILITIES = "cp"  # [read, write, emit, view, ext] scopes for grantSlot
EXTENSION_METHODS = "xm"  # alias -> method names
LIMITS = "lm"  # [maxCalls, maxMutations, maxEvents, maxBytes]
SCOPE = "sc"  # $scope
SEED = "rs"  # a new Math.random seed

# First element of every answer.
ANSWER_OK = 0
ANSWER_ERROR = 1
ANSWER_SUSPENDED = 2
ANSWER_KINDS = frozenset({ANSWER_OK, ANSWER_ERROR, ANSWER_SUSPENDED})
# Positions in finished and suspended answers (the call takes the return value's place).
RETURN_VALUE = 1
CALL = 1
MUTATIONS = 2
EVENTS = 3
VIEWS = 4
LOGS = 5
API_CALLS = 6
# Positions in failed answers.
ERROR = 1
ERROR_LOGS = 2
ERROR_API_CALLS = 3
# Positions in a suspended answer's call.
CALL_ID = 0
CALL_ALIAS = 1
CALL_METHOD = 2
CALL_ARGS = 3


def _not_json(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON data")


# The C encoder of the json module, built once: JSONEncoder.encode rebuilds it on every call.
_c_encoder = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    if getattr(json.encoder, "c_make_encoder", None)
    else None
)
_py_encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_not_json).encode


def encode(value: Any) -> str:
    """Compact ASCII JSON; TypeError/ValueError/RecursionError for what JSON cannot hold."""
    if _c_encoder is None:
        return _py_encode(value)
    return "".join(_c_encoder(value, 0))


def field(key: str, json_text: str) -> str:
    """One member of the extra object, its value already JSON."""
    return f'"{key}":{json_text}'


def code_fields(code: str) -> str:
    """The code to compile, with a fresh label for the block around it."""
    return field(CODE, encode(code)) + "," + field(LABEL, '"L' + secrets.token_hex(8) + '"')


def run_request(handler_slot: int, grant_slot: int, state_json: str, args_json: str | None, extra: list[str]) -> bytes:
    """A run request; ``args_json`` None sends 0 (the arguments of the previous execution)."""
    tail = ",{" + ",".join(extra) + "}]" if extra else "]"
    args = "0" if args_json is None else args_json
    return f"[{handler_slot},{grant_slot},{state_json},{args}{tail}".encode("ascii")


def check_request(code: str) -> bytes:
    """Compile ``code`` and answer; the glue needs no handler or grant slot for that."""
    return run_request(0, 0, "{}", "{}", [field(CHECK_ONLY, "1"), code_fields(code)])


def resume_request(
    call_id: int, ok: bool, value_json: str, error_json: str, state_json: str, code_json: str | None = None
) -> bytes:
    """A resume request; ``code_json``, when given, becomes the ``code`` of the Error thrown at the await."""
    tail = "" if code_json is None else "," + code_json
    return f"[{call_id},{'true' if ok else 'false'},{value_json},{error_json},{state_json}{tail}]".encode("ascii")


@functools.lru_cache(maxsize=1024)
def grant_payload(caps: CapabilitySet) -> tuple[str, bool]:
    """``[read, write, emit, view, ext]`` scopes for the glue, and whether every key is readable.

    Write implies read.
    """
    kinds = ("state:read", "state:write", "events:emit", "view:update", "ext")
    groups: dict[str, list[str]] = {kind: [] for kind in kinds}
    for token in caps.tokens:
        capability = parse_capability(token)
        groups[capability.kind].append(capability.scope)
    readable = groups["state:read"] + groups["state:write"]
    payload = [readable, groups["state:write"], groups["events:emit"], groups["view:update"], groups["ext"]]
    return encode(payload), "*" in readable


def plain(value: Any) -> Any:
    """Tuples as lists, other mappings as dicts, so the JSON encoder accepts them (top level)."""
    if value is None or isinstance(value, dict | list | str | int | float | bool):
        return value
    if isinstance(value, tuple):
        return list(value)
    try:
        return dict(value)
    except (TypeError, ValueError):
        return value


def escaped_size(text: str) -> int:
    """Length of JSON ``text`` once every non-ASCII character is a ``\\uXXXX`` escape.

    That is how clients receive it; a character outside the BMP takes two escapes.
    """
    if text.isascii():
        return len(text)
    units = len(text.encode("utf-16-le")) // 2
    return units + 5 * (units - len(text.encode("ascii", "ignore")))


def readable_state(ctx: ExecutionContext, state: Any, reads_all: bool) -> dict[str, Any]:
    """Only readable keys enter the sandbox."""
    if type(state) is not dict:
        state = dict(state)
    if not reads_all:
        can_read = ctx.capability_set.can_read
        state = {key: value for key, value in state.items() if isinstance(key, str) and can_read(key)}
    return state
