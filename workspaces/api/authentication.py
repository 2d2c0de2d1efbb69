"""DRF authentication: JWT bearer tokens, the browser's session, or the local user when auth is off."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from workspaces.access import local_user

TOKEN_EXPIRED = "The token has expired; get a new one with /api/v1/auth/token/refresh/"
TOKEN_INVALID = "The token is not valid"


class TokenAuthentication(JWTAuthentication):
    """Bearer JWTs; ``request.auth`` keeps the validated token so its claims can narrow access."""

    www_authenticate_realm = "nexus"

    def get_validated_token(self, raw_token: bytes) -> Token:
        """simplejwt's check, refusing with one plain sentence: expired, or not valid."""
        expired = False
        for token_class in api_settings.AUTH_TOKEN_CLASSES:
            try:
                return token_class(raw_token)  # type: ignore[no-any-return]
            except ExpiredTokenError:
                expired = True
            except TokenError:
                pass
        raise exceptions.AuthenticationFailed(TOKEN_EXPIRED if expired else TOKEN_INVALID, code="token_not_valid")


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's Django session, with Django's CSRF rules for unsafe methods."""


class LocalUserAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None]:
        return local_user(), None
