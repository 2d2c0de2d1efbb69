"""JWT keys with rotation: sign with the current key, verify with the current and the previous ones.

Every token carries a ``kid`` header naming the key that signed it, so verification picks the
key directly; tokens without one (issued before key ids existed) are tried against each key.
Rotating is then: the old key moves to ``JWT_SECRET_PREVIOUS``, a new one becomes
``JWT_SECRET``, and nobody is signed out; once the longest token lifetime has passed, the old
key is dropped (docs/operations.md, "Rotating secrets").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import jwt
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError


def key_id(key: str) -> str:
    """A short public name of a key; it reveals nothing usable about the key itself."""
    return hashlib.sha256(f"nexus-jwt-kid:{key}".encode()).hexdigest()[:16]


class RotatingTokenBackend(TokenBackend):
    """simplejwt's HMAC backend with a ``kid`` header and a list of verification keys."""

    def __init__(self, algorithm: str, current_key: str, previous_keys: Sequence[str] = (), **options: Any) -> None:
        super().__init__(algorithm, current_key, **options)
        keys = [current_key, *(key for key in previous_keys if key and key != current_key)]
        self.verifiers = {key_id(key): TokenBackend(algorithm, key, **options) for key in keys}

    def encode(self, payload: dict[str, Any]) -> str:
        jwt_payload = payload.copy()
        if self.audience is not None:
            jwt_payload["aud"] = self.audience
        if self.issuer is not None:
            jwt_payload["iss"] = self.issuer
        return jwt.encode(
            jwt_payload,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers={"kid": key_id(self.signing_key or "")},
            json_encoder=self.json_encoder,
        )

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        if not verify:
            return super().decode(token, verify=False)
        candidates = self._candidates(token)
        for verifier in candidates[:-1]:
            try:
                return verifier.decode(token)
            except TokenBackendError as exc:
                if not isinstance(exc.__cause__, jwt.InvalidSignatureError):
                    raise
        return candidates[-1].decode(token)

    def _candidates(self, token: Any) -> list[TokenBackend]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            kid = None
        if kid in self.verifiers:
            return [self.verifiers[kid]]
        # No (or an unknown) key id: try every key; a wrong one fails as "Token is invalid".
        return list(self.verifiers.values())


def build_backend() -> RotatingTokenBackend:
    from django.conf import settings
    from rest_framework_simplejwt.settings import api_settings

    return RotatingTokenBackend(
        api_settings.ALGORITHM,
        api_settings.SIGNING_KEY,
        settings.NEXUS.JWT_SECRET_PREVIOUS,
        audience=api_settings.AUDIENCE,
        issuer=api_settings.ISSUER,
        leeway=api_settings.LEEWAY,
        json_encoder=api_settings.JSON_ENCODER,
    )


def install() -> None:
    """Make every simplejwt token (minted, refreshed or verified) use the rotating backend."""
    from rest_framework_simplejwt import state

    state.token_backend = build_backend()
