"""The panel service's refusals."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refusal with an API error code (see workspaces.api.errors.STATUS_CODES)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BatchRefused(Exception):
    """A handler's batch broke a rule (capability, type, declaration); carries the error to report."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
