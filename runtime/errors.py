"""Error codes of the sandbox and the exceptions the runtime raises to its callers.

Handler failures are not exceptions: they come back as ``ExecutionResult(status="error")``
with an error dict ``{"code", "message", "stack"?, "location"?, "snippet"?}``. Exceptions
are kept for the caller's own mistakes (bad arguments to the API) and for a pool that has
no free instance within ``acquire_timeout_ms`` (``RuntimeBusyError``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Required, TypedDict, cast


class ErrorCode(StrEnum):
    """Every error code a caller of Nexus can see, in one vocabulary.

    The runtime reports the first group; the Django side adds the refusals of its service and
    faces (docs/protocol.md and the API schema list them). Members are strings, so they compare
    equal to, and serialise as, their values.
    """

    # A handler's failure, reported by the sandbox.
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
    INTERRUPTED = "INTERRUPTED"
    # A request refused by the service or one of its faces (REST, WebSocket, MCP).
    INVALID_NXML = "INVALID_NXML"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PANEL_EXISTS = "PANEL_EXISTS"
    REVISION_CONFLICT = "REVISION_CONFLICT"
    SCHEDULE_RUNNING = "SCHEDULE_RUNNING"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    MAX_PANELS = "MAX_PANELS"
    THROTTLED = "THROTTLED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"


# The codes a handler's failure can carry.
ERROR_CODES: frozenset[str] = frozenset(
    {
        ErrorCode.TIMEOUT,
        ErrorCode.MEMORY_LIMIT,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.EXECUTION_ERROR,
        ErrorCode.COMPILATION_ERROR,
        ErrorCode.INVALID_HANDLER,
        ErrorCode.RESOURCE_LIMIT,
        ErrorCode.INVALID_ARGS,
        ErrorCode.TOOL_NOT_FOUND,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.RUNTIME_BUSY,
        ErrorCode.INTERRUPTED,
    }
)

# Codes after which the guest instance is thrown away instead of being reused.
INSTANCE_POISONING_CODES: frozenset[str] = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.MEMORY_LIMIT, ErrorCode.RESOURCE_LIMIT, ErrorCode.INTERNAL_ERROR}
)


class CodedError(Exception):
    """A refusal or failure that carries its error code, a message for people and optional details."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


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


class SandboxError(CodedError):
    """Base class of the exceptions raised by the runtime; each subclass has its code."""

    code: str = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(self.code, message)

    def to_error(self) -> ErrorInfo:
        return error_dict(self.code, self.message)


class RuntimeBusyError(SandboxError):
    """No sandbox instance became free within ``acquire_timeout_ms``."""

    code = ErrorCode.RUNTIME_BUSY


class RuntimeClosedError(SandboxError):
    """The runtime was closed; it accepts no more work."""


class GuestFault(SandboxError):
    """The guest instance failed in a way that makes it unusable (trap, broken glue)."""

    def __init__(self, code: str, message: str) -> None:
        CodedError.__init__(self, code, message)
