"""Error codes of the sandbox and the exceptions the runtime raises to its callers.

Handler failures are not exceptions: they come back as ``ExecutionResult(status="error")``
with an error dict ``{"code", "message", "stack"?, "location"?, "snippet"?}``. Exceptions
are kept for the caller's own mistakes (bad arguments to the API) and for a pool that has
no free instance within ``acquire_timeout_ms`` (``RuntimeBusyError``).
"""

from __future__ import annotations

from typing import Any, Required, TypedDict, cast

TIMEOUT = "TIMEOUT"
MEMORY_LIMIT = "MEMORY_LIMIT"
PERMISSION_DENIED = "PERMISSION_DENIED"
EXECUTION_ERROR = "EXECUTION_ERROR"
COMPILATION_ERROR = "COMPILATION_ERROR"
INVALID_HANDLER = "INVALID_HANDLER"
RESOURCE_LIMIT = "RESOURCE_LIMIT"
INVALID_ARGS = "INVALID_ARGS"
TOOL_NOT_FOUND = "TOOL_NOT_FOUND"
INTERNAL_ERROR = "INTERNAL_ERROR"
RUNTIME_BUSY = "RUNTIME_BUSY"

ERROR_CODES: frozenset[str] = frozenset(
    {
        TIMEOUT,
        MEMORY_LIMIT,
        PERMISSION_DENIED,
        EXECUTION_ERROR,
        COMPILATION_ERROR,
        INVALID_HANDLER,
        RESOURCE_LIMIT,
        INVALID_ARGS,
        TOOL_NOT_FOUND,
        INTERNAL_ERROR,
        RUNTIME_BUSY,
    }
)

# Codes after which the guest instance is thrown away instead of being reused.
INSTANCE_POISONING_CODES: frozenset[str] = frozenset({TIMEOUT, MEMORY_LIMIT, RESOURCE_LIMIT, INTERNAL_ERROR})


class Location(TypedDict):
    """A 1-based position in the handler's own code."""

    line: int
    column: int


class ErrorInfo(TypedDict, total=False):
    """An execution's error as callers get it."""

    code: Required[str]
    message: Required[str]
    stack: str  # handler frames only, ``handler:LINE:COLUMN``
    location: Location
    snippet: str  # the line at ``location``
    resource: str  # the capability a PERMISSION_DENIED needed


def error_dict(code: str, message: str, **extra: Any) -> ErrorInfo:
    """Build an error of the ErrorInfo shape; ``None`` extras are left out."""
    error: dict[str, Any] = {"code": code, "message": message}
    for key, value in extra.items():
        if value is not None:
            error[key] = value
    return cast(ErrorInfo, error)


class SandboxError(Exception):
    """Base class of the exceptions raised by the runtime."""

    code = INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_error(self) -> ErrorInfo:
        return error_dict(self.code, self.message)


class RuntimeBusyError(SandboxError):
    """No sandbox instance became free within ``acquire_timeout_ms``."""

    code = RUNTIME_BUSY


class RuntimeClosedError(SandboxError):
    """The runtime was closed; it accepts no more work."""

    code = INTERNAL_ERROR


class GuestFault(SandboxError):
    """The guest instance failed in a way that makes it unusable (trap, broken glue)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
