"""POST /api/v1/auth/token/ and /refresh/: the pair, its claims, and every refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.api.conftest import assert_error
from tests.conftest import TEST_PASSWORD

TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"


@pytest.fixture
def alice(make_user, make_workspace):  # type: ignore[no-untyped-def]
    user = make_user("alice")
    make_workspace("lab", {user: "editor"})
    make_workspace("elsewhere")
    return user


def obtain(**body: Any) -> Any:
    return APIClient().post(TOKEN, body, format="json")


def test_pair_carries_subject_and_expiry(alice: Any) -> None:
    response = obtain(username="alice", password=TEST_PASSWORD)
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    access = AccessToken(response.json()["access"])
    assert access["sub"] == "alice"
    assert access["exp"] > access["iat"]
    assert "workspace_id" not in access.payload and "permissions" not in access.payload


def test_claims_narrow_the_tokens_and_survive_refresh(alice: Any) -> None:
    response = obtain(username="alice", password=TEST_PASSWORD, workspace_id="lab",
                      permissions=["panel:read", "panel:execute"])
    assert response.status_code == 200
    access = AccessToken(response.json()["access"])
    assert access["workspace_id"] == "lab"
    assert access["permissions"] == ["panel:execute", "panel:read"]
    refreshed = APIClient().post(REFRESH, {"refresh": response.json()["refresh"]}, format="json")
    assert refreshed.status_code == 200
    again = AccessToken(refreshed.json()["access"])
    assert (again["sub"], again["workspace_id"], again["permissions"]) == (
        "alice", "lab", ["panel:execute", "panel:read"]
    )


def test_the_token_works_as_bearer(alice: Any) -> None:
    access = obtain(username="alice", password=TEST_PASSWORD).json()["access"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = client.get("/api/v1/workspaces/")
    assert response.status_code == 200
    assert [w["slug"] for w in response.json()] == ["lab"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": TEST_PASSWORD},
    ],
)
def test_bad_credentials_are_401(alice: Any, body: dict[str, str]) -> None:
    assert_error(obtain(**body), 401, "UNAUTHENTICATED")


def test_inactive_user_gets_no_token(alice: Any) -> None:
    alice.is_active = False
    alice.save()
    assert_error(obtain(username="alice", password=TEST_PASSWORD), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "extra",
    [
        {"permissions": ["panel:read", "root"]},
        {"permissions": "panel:read"},
        {"workspace_id": "elsewhere"},  # exists, but alice is no member
        {"workspace_id": "missing"},
        {"workspace_id": "not a slug!"},
    ],
)
def test_claims_that_cannot_be_granted_are_400(alice: Any, extra: dict[str, Any]) -> None:
    assert_error(obtain(username="alice", password=TEST_PASSWORD, **extra), 400, "INVALID_REQUEST")


def test_missing_fields_are_400(alice: Any) -> None:
    assert_error(obtain(username="alice"), 400, "INVALID_REQUEST")


def test_refresh_refusals(alice: Any) -> None:
    assert_error(APIClient().post(REFRESH, {"refresh": "garbage"}, format="json"), 401, "UNAUTHENTICATED")
    assert_error(APIClient().post(REFRESH, {}, format="json"), 400, "INVALID_REQUEST")
    access = obtain(username="alice", password=TEST_PASSWORD).json()["access"]
    # An access token is not a refresh token.
    assert_error(APIClient().post(REFRESH, {"refresh": access}, format="json"), 401, "UNAUTHENTICATED")


def test_refresh_for_a_deleted_user_is_401(alice: Any) -> None:
    refresh = str(RefreshToken.for_user(alice))
    alice.delete()
    assert_error(APIClient().post(REFRESH, {"refresh": refresh}, format="json"), 401, "UNAUTHENTICATED")


def test_bad_bearer_tokens_are_401(alice: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    response = client.get("/api/v1/workspaces/")
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"].startswith("Bearer")
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert_error(client.get("/api/v1/workspaces/"), 401, "UNAUTHENTICATED")


def test_token_of_a_deleted_user_is_401(alice: Any, token_for: Any) -> None:
    token = token_for(alice)
    alice.delete()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_error(client.get("/api/v1/workspaces/"), 401, "UNAUTHENTICATED")


def test_session_login_works_for_the_browser(alice: Any) -> None:
    client = APIClient()
    assert client.login(username="alice", password=TEST_PASSWORD)
    assert client.get("/api/v1/workspaces/").status_code == 200
