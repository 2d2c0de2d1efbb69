"""The one DRF permission class: it asks workspaces.access, which knows roles and token claims.

A view declares which permission each of its actions needs (``required_permissions``) and
how it finds its workspace (``workspace_slug()``; None for routes outside any workspace).
The class resolves the workspace, runs the check, and leaves ``view.workspace`` and
``view.role`` for the view to use. Refusals are raised as ``AccessDenied`` so the status
(401, 403 or an invisible-workspace 404) comes from the access module, not from here.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from workspaces.access import (
    AccessDenied,
    Principal,
    check,
    check_token_permission,
    is_anonymous,
    principal_for,
)
from workspaces.models import Workspace
from workspaces.services.errors import ErrorCode


def principal_of(request: Request) -> Principal:
    return principal_for(request.user, request.auth)


class WorkspaceAccess(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        principal = principal_of(request)
        if is_anonymous(principal.user):
            raise AccessDenied(401, ErrorCode.UNAUTHENTICATED, "Authentication required")
        permission = view.required_permission()
        slug = view.workspace_slug()
        if slug is None:
            # Outside any workspace: only the token's own narrowing applies.
            if permission is not None:
                self._check_unscoped(principal, permission)
            return True
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise AccessDenied(404, ErrorCode.NOT_FOUND, view.workspace_missing(slug))
        view.workspace = workspace
        view.role = check(principal, workspace, permission)
        return True

    @staticmethod
    def _check_unscoped(principal: Principal, permission: str) -> None:
        if principal.token_workspace:
            raise AccessDenied(
                403, ErrorCode.FORBIDDEN, f"Token is limited to workspace '{principal.token_workspace}'"
            )
        check_token_permission(principal, permission)
