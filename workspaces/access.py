"""Who may do what in a workspace: membership role, and the token's own narrowing.

A request needs both: the member's role must grant the permission, and when the caller's
token names permissions or a workspace, those must include it too. Every entry point (REST,
WebSocket, pages, admin actions) asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from workspaces.models import Membership, Role, Workspace
from workspaces.services.errors import CodedError, ErrorCode

PANEL_CREATE = "panel:create"
PANEL_READ = "panel:read"
PANEL_EXECUTE = "panel:execute"
PANEL_DELETE = "panel:delete"
WORKSPACE_ADMIN = "workspace:admin"
ALL_PERMISSIONS = frozenset({PANEL_CREATE, PANEL_READ, PANEL_EXECUTE, PANEL_DELETE, WORKSPACE_ADMIN})

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    Role.VIEWER: frozenset({PANEL_READ}),
    Role.EDITOR: frozenset({PANEL_READ, PANEL_CREATE, PANEL_EXECUTE, PANEL_DELETE}),
    Role.OWNER: ALL_PERMISSIONS,
}

LOCAL_USERNAME = "local"
DEFAULT_WORKSPACE = "default"


class AccessDenied(CodedError):
    """``status`` is 404 when the workspace must stay invisible to the caller, else 403."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """An authenticated caller with the claims of the token it presented, if any."""

    user: Any
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def username(self) -> str:
        return str(getattr(self.user, "username", "") or "")

    @property
    def token_workspace(self) -> str | None:
        value = self.claims.get("workspace_id")
        return str(value) if value else None

    @property
    def token_permissions(self) -> frozenset[str] | None:
        value = self.claims.get("permissions")
        if value is None:
            return None
        return frozenset(str(item) for item in value) if isinstance(value, list | tuple) else frozenset()


def principal_for(user: Any, auth: Any = None) -> Principal:
    claims = getattr(auth, "payload", None) if auth is not None else None
    return Principal(user=user, claims=dict(claims or {}))


def role_of(user: Any, workspace: Workspace) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    membership = Membership.objects.filter(user=user, workspace=workspace).only("role").first()
    return membership.role if membership else None


def check(principal: Principal, workspace: Workspace, permission: str) -> str:
    """Return the caller's role, or raise AccessDenied."""
    if not getattr(principal.user, "is_authenticated", False):
        raise AccessDenied(401, ErrorCode.UNAUTHENTICATED, "Authentication required")
    return check_role(principal, workspace, role_of(principal.user, workspace), permission)


def check_role(principal: Principal, workspace: Workspace, role: str | None, permission: str) -> str:
    """``check`` for a caller whose role in the workspace is already known (None: not a member)."""
    if role is None:
        raise AccessDenied(404, ErrorCode.NOT_FOUND, f"Workspace '{workspace.slug}' not found")
    if principal.token_workspace and principal.token_workspace != workspace.slug:
        raise AccessDenied(403, ErrorCode.FORBIDDEN, f"Token is limited to workspace '{principal.token_workspace}'")
    if permission not in ROLE_PERMISSIONS[role]:
        raise AccessDenied(403, ErrorCode.FORBIDDEN, f"Role '{role}' does not grant {permission}")
    granted = principal.token_permissions
    if granted is not None and permission not in granted:
        raise AccessDenied(403, ErrorCode.FORBIDDEN, f"Token does not grant {permission}")
    return role


def check_token_permission(principal: Principal, permission: str) -> None:
    """For actions outside any workspace yet (creating one): only the token can narrow them."""
    granted = principal.token_permissions
    if granted is not None and permission not in granted:
        raise AccessDenied(403, ErrorCode.FORBIDDEN, f"Token does not grant {permission}")


def visible_workspaces(principal: Principal) -> Any:
    queryset = Workspace.objects.filter(memberships__user=principal.user)
    if principal.token_workspace:
        queryset = queryset.filter(slug=principal.token_workspace)
    return queryset.distinct()


def local_user() -> AbstractBaseUser:
    """The single user every request acts as when authentication is switched off."""
    user, _ = get_user_model().objects.get_or_create(username=LOCAL_USERNAME)
    workspace, _ = Workspace.objects.get_or_create(slug=DEFAULT_WORKSPACE, defaults={"name": "Default"})
    Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": Role.OWNER})
    return user


def is_anonymous(user: Any) -> bool:
    return user is None or isinstance(user, AnonymousUser) or not user.is_authenticated
