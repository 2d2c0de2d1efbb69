"""DRF authentication: JWT bearer tokens, the browser's session, or the local user when auth is off."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication

from workspaces.access import local_user


class TokenAuthentication(JWTAuthentication):
    """Bearer JWTs; ``request.auth`` keeps the validated token so its claims can narrow access."""

    www_authenticate_realm = "nexus"


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's Django session, with Django's CSRF rules for unsafe methods."""


class LocalUserAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None]:
        return local_user(), None
