"""Who is on the other end of a WebSocket: bearer header, ?token=, or the browser's session."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

from workspaces.access import Principal, is_anonymous, local_user


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(scope: dict[str, Any]) -> str | None:
    header = _header(scope, b"authorization")
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def raw_token(scope: dict[str, Any]) -> str | None:
    token = bearer_token(scope)
    if token:
        return token
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


def principal_from_token(raw: str) -> Principal | None:
    """The active user a JWT names, with its claims; None for a bad, expired or unknown token."""
    authenticator = JWTAuthentication()
    try:
        validated = authenticator.get_validated_token(raw.encode())
        user = authenticator.get_user(validated)
    except (InvalidToken, AuthenticationFailed, TokenError):
        return None
    if not user.is_active:
        return None
    return Principal(user=user, claims=dict(validated.payload))


_from_token = database_sync_to_async(principal_from_token)


@database_sync_to_async
def _local() -> Principal:
    return Principal(user=local_user())


def same_origin(scope: dict[str, Any]) -> bool:
    """A session cookie is only honoured from pages served by this host (no cross-site sockets)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host") or ""
    return urlsplit(origin).netloc.lower() == host.lower()


async def authenticate(scope: dict[str, Any]) -> Principal | None:
    if not settings.NEXUS.AUTH_ENABLED:
        return await _local()
    raw = raw_token(scope)
    if raw:
        return await _from_token(raw)
    user = scope.get("user")
    if is_anonymous(user) or not same_origin(scope):
        return None
    return Principal(user=user)
