"""Error codes of the sandbox and the exceptions the runtime raises to its callers.

Handler failures are not exceptions: they come back as ``ExecutionResult(status="error")``
with an error dict ``{"code", "message", "stack"?, "location"?, "snippet"?}``. Exceptions
are kept for the caller's own mistakes (bad arguments to the API) and for a pool that has
no free instance within ``acquire_timeout_ms`` (``RuntimeBusyError``).
"""

from __future__ import annotations

from typing import Any

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


def error_dict(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """Build an error dict of the SPEC shape; ``None`` extras are left out."""
    error: dict[str, Any] = {"code": code, "message": message}
    for key, value in extra.items():
        if value is not None:
            error[key] = value
    return error


class SandboxError(Exception):
    """Base class of the exceptions raised by the runtime."""

    code = INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_error(self) -> dict[str, Any]:
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
