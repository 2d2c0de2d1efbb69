"""JWTs for Nexus callers: the simplejwt pair plus the claims that narrow what a token may do.

``workspace_id`` limits a token to one workspace and ``permissions`` to a subset of
``workspaces.access.ALL_PERMISSIONS``. Both ride on the refresh token, so every access
token refreshed from it carries them too (simplejwt copies claims on refresh).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from workspaces.access import ALL_PERMISSIONS
from workspaces.models import Membership, Workspace


class TokenRequestError(ValueError):
    """A token was asked for with claims that cannot be granted; the message says why."""


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str

    def as_dict(self) -> dict[str, str]:
        return {"access": self.access, "refresh": self.refresh}


def normalize_permissions(value: Any) -> list[str] | None:
    """None stays None (no narrowing); otherwise a sorted list of known permission names.

    Accepts a list of names or one comma-separated string.
    """
    if value is None:
        return None
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise TokenRequestError("permissions must be a list of permission names")
    names = [str(item).strip() for item in items if str(item).strip()]
    unknown = sorted(set(names) - ALL_PERMISSIONS)
    if unknown:
        raise TokenRequestError(
            f"unknown permission(s) {', '.join(unknown)}; choose from {', '.join(sorted(ALL_PERMISSIONS))}"
        )
    return sorted(set(names))


def check_workspace_claim(user: Any, workspace_slug: str | None, explain: bool = False) -> str | None:
    """The slug when the user belongs to that workspace; a token for any other would be useless.

    For callers over the network a workspace the user is not in is refused exactly like one
    that does not exist (same message, same single query), so the answer tells nothing about
    other tenants; ``explain`` (staff tools) says which of the two it is.
    """
    if not workspace_slug:
        return None
    if Membership.objects.filter(user=user, workspace__slug=workspace_slug).exists():
        return workspace_slug
    if not explain:
        raise TokenRequestError(f"you are not a member of a workspace '{workspace_slug}'")
    if not Workspace.objects.filter(slug=workspace_slug).exists():
        raise TokenRequestError(f"workspace '{workspace_slug}' does not exist")
    raise TokenRequestError(f"user '{user.get_username()}' is not a member of workspace '{workspace_slug}'")


def refresh_token_for(
    user: Any, workspace_slug: str | None = None, permissions: list[str] | None = None
) -> RefreshToken:
    refresh = RefreshToken.for_user(user)
    if workspace_slug:
        refresh["workspace_id"] = workspace_slug
    if permissions is not None:
        refresh["permissions"] = list(permissions)
    return refresh


def mint_pair(user: Any, workspace_slug: str | None = None, permissions: Any = None) -> TokenPair:
    """Validate the requested claims and return a signed access/refresh pair."""
    slug = check_workspace_claim(user, workspace_slug)
    refresh = refresh_token_for(user, slug, normalize_permissions(permissions))
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def mint_access(
    user: Any, workspace_slug: str | None = None, permissions: Any = None, ttl: timedelta | None = None
) -> str:
    """One access token for staff tools; ``ttl`` overrides the configured lifetime (JWT_ACCESS_TTL)."""
    slug = check_workspace_claim(user, workspace_slug, explain=True)
    access: AccessToken = refresh_token_for(user, slug, normalize_permissions(permissions)).access_token
    if ttl is not None:
        access.set_exp(lifetime=ttl)
    return str(access)
