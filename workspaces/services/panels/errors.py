"""The panel service's refusals."""

from __future__ import annotations

from typing import Any

from workspaces.services.errors import CodedError


class ServiceError(CodedError):
    """A refusal with an ErrorCode, a message and optional details (see workspaces.api.errors.STATUS_CODES)."""


class BatchRefused(Exception):
    """A handler's batch broke a rule (capability, type, declaration); carries the error to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
