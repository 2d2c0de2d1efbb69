"""Nexus sandbox runtime: untrusted handler JavaScript in QuickJS on WebAssembly.

No Django here: ``from runtime import Runtime, ExecutionContext`` works in any Python
process. docs/architecture.md describes where it sits; docs/security.md what it enforces.
"""

from .errors import (
    COMPILATION_ERROR,
    ERROR_CODES,
    EXECUTION_ERROR,
    INTERNAL_ERROR,
    INVALID_ARGS,
    INVALID_HANDLER,
    MEMORY_LIMIT,
    PERMISSION_DENIED,
    RESOURCE_LIMIT,
    RUNTIME_BUSY,
    TIMEOUT,
    TOOL_NOT_FOUND,
    RuntimeBusyError,
    RuntimeClosedError,
    SandboxError,
)
from .execution import ExecutionContext, ExecutionResult
from .limits import RuntimeConfig
from .runtime import Runtime

__all__ = [
    "COMPILATION_ERROR",
    "ERROR_CODES",
    "EXECUTION_ERROR",
    "INTERNAL_ERROR",
    "INVALID_ARGS",
    "INVALID_HANDLER",
    "MEMORY_LIMIT",
    "PERMISSION_DENIED",
    "RESOURCE_LIMIT",
    "RUNTIME_BUSY",
    "TIMEOUT",
    "TOOL_NOT_FOUND",
    "ExecutionContext",
    "ExecutionResult",
    "Runtime",
    "RuntimeBusyError",
    "RuntimeClosedError",
    "RuntimeConfig",
    "SandboxError",
]
