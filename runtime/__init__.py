"""Nexus sandbox runtime: untrusted handler JavaScript in QuickJS on WebAssembly.

No Django here: ``from runtime import Runtime, ExecutionContext`` works in any Python
process. docs/architecture.md describes where it sits; docs/security.md what it enforces.
"""

from .errors import (
    ERROR_CODES,
    CodedError,
    ErrorCode,
    RuntimeBusyError,
    RuntimeClosedError,
    SandboxError,
)
from .execution import ExecutionContext, ExecutionResult
from .limits import RuntimeConfig
from .runtime import Runtime

__all__ = [
    "ERROR_CODES",
    "CodedError",
    "ErrorCode",
    "ExecutionContext",
    "ExecutionResult",
    "Runtime",
    "RuntimeBusyError",
    "RuntimeClosedError",
    "RuntimeConfig",
    "SandboxError",
]
