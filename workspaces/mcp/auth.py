"""Who is calling the MCP endpoint, and what they may do in its workspace.

The same tokens, roles and permission claims as the REST API: the JWT is checked as for a
WebSocket (``workspaces.ws_auth``) and access as everywhere else (``workspaces.access``).
Only the ``Authorization: Bearer`` header counts; the browser's session cookie does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.responses import JSONResponse

from nexus.errors import error_body
from workspaces import access
from workspaces.access import AccessDenied, Principal
from workspaces.models import Workspace
from workspaces.services.errors import ErrorCode
from workspaces.ws_auth import principal_from_token

WWW_AUTHENTICATE = 'Bearer realm="nexus"'


@dataclass(frozen=True)
class Caller:
    """An authenticated member of the endpoint's workspace (they hold at least panel:read)."""

    principal: Principal
    workspace: Workspace
    role: str
    # Why panel:execute is refused to this caller; None when it is granted.
    execute_refusal: AccessDenied | None

    @property
    def actor(self) -> str:
        return self.principal.username


def _principal(raw_token: str | None) -> Principal | None:
    if not settings.NEXUS.AUTH_ENABLED:
        return Principal(user=access.local_user())
    return principal_from_token(raw_token) if raw_token else None


def authorize(raw_token: str | None, workspace_slug: str) -> Caller:
    """Check the token and the caller's access to the workspace; raises AccessDenied (401, 403 or 404)."""
    principal = _principal(raw_token)
    if principal is None:
        reason = "is not valid or has expired" if raw_token else "is missing"
        raise AccessDenied(
            401, ErrorCode.UNAUTHENTICATED,
            f"The bearer token {reason}: send 'Authorization: Bearer <JWT>' (manage.py nexus_token prints one)",
        )
    workspace = Workspace.objects.filter(slug=workspace_slug).first()
    if workspace is None:
        raise AccessDenied(404, ErrorCode.NOT_FOUND, f"Workspace '{workspace_slug}' not found")
    role = access.check(principal, workspace, access.PANEL_READ)
    try:
        access.check_role(principal, workspace, role, access.PANEL_EXECUTE)
        refusal = None
    except AccessDenied as denied:
        refusal = denied
    return Caller(principal, workspace, role, refusal)


def session_owner(caller: Caller, raw_token: str | None) -> AuthenticatedUser | None:
    """The identity the SDK binds a session to: a session id is useless with another user's token."""
    user = caller.principal.user
    if not getattr(user, "is_authenticated", False):
        return None
    token = AccessToken(
        token=raw_token or "", client_id=caller.actor, subject=str(user.pk),
        scopes=sorted(caller.principal.token_permissions or access.ROLE_PERMISSIONS[caller.role]),
    )
    return AuthenticatedUser(token)


def refusal_response(denied: AccessDenied) -> Any:
    """The HTTP answer to a refused request, with the API's error body."""
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if denied.status == 401 else None
    return JSONResponse(error_body(denied.code, denied.message), status_code=denied.status, headers=headers)
