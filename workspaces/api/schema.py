"""OpenAPI pieces: the documented error responses and the authentication schemes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from workspaces.api.serializers import ErrorSerializer

THROTTLED = (
    "THROTTLED: over the caller's request rate (API_THROTTLE_USER, API_THROTTLE_ANON, or too many "
    "failed logins); the Retry-After header and details.retryAfter say how many seconds to wait"
)
ERROR_CODES: dict[int, str] = {
    400: "INVALID_NXML (details.errors[] with line and column), INVALID_REQUEST or INVALID_ARGS",
    401: "UNAUTHENTICATED: no valid credentials",
    403: "FORBIDDEN: the role or the token's claims do not allow this",
    404: "NOT_FOUND (unknown, or a workspace the caller is not a member of) or TOOL_NOT_FOUND",
    409: "PANEL_EXISTS: a panel with this id exists in the workspace; SCHEDULE_RUNNING: the schedule's run is "
         "still going; REVISION_CONFLICT: baseRevision is not the panel's current revision (details.currentRevision)",
    413: "PAYLOAD_TOO_LARGE: the body is over BODY_LIMIT",
    429: "MAX_PANELS: the workspace is at its panel limit; QUOTA_EXCEEDED: the workspace used up a quota "
         "(details.quota, details.limit, details.retryAfter; Retry-After header); or " + THROTTLED,
    503: "RUNTIME_BUSY (every sandbox is busy) or UNAVAILABLE (shutting down, database down)",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for extend_schema, each with the body shape and the codes it can carry."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_CODES[code]) for code in statuses}


def add_throttled_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation may answer 429 THROTTLED (the API's rate throttles apply to all of them)."""
    throttled = {
        "description": THROTTLED,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("429", throttled)
    return result


class BearerTokenScheme(SimpleJWTScheme):
    target_class = "workspaces.api.authentication.TokenAuthentication"
    name = "bearerAuth"


class BrowserSessionScheme(OpenApiAuthenticationExtension):
    target_class = "workspaces.api.authentication.SessionAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class LocalUserScheme(OpenApiAuthenticationExtension):
    """With AUTH_ENABLED=false nothing is required: every request is the local user."""

    target_class = "workspaces.api.authentication.LocalUserAuthentication"
    name = "localUser"

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{}]

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {}
