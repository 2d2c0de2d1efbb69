"""What enters over REST is bounded and answered clearly: deep JSON, throttles, refusals that explain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from tests.api import test_auth
from tests.api.conftest import MONITOR, World, assert_error
from tests.conftest import TEST_PASSWORD

TOKEN = "/api/v1/auth/token/"
alice = test_auth.alice  # the fixture: alice, an editor of "lab"; "elsewhere" exists
DEEP = "[" * 5000 + "]" * 5000


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------- deep JSON


@pytest.mark.parametrize("depth", [65, 5000, 200_000])
def test_deep_json_is_400_on_the_token_endpoint(db: None, depth: int) -> None:
    body = '{"username": "a", "password": "b", "x": ' + deep(depth) + "}"
    response = APIClient().post(TOKEN, body, content_type="application/json")
    assert "64" in assert_error(response, 400, "INVALID_REQUEST")["message"]


def test_deep_json_is_400_on_validate_and_tools(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    for path in ("/api/v1/workspaces/ws/panels/validate/", "/api/v1/workspaces/ws/panels/counter/tools/increment/"):
        response = client.post(path, '{"source": "x", "args": ' + DEEP + "}", content_type="application/json")
        assert_error(response, 400, "INVALID_REQUEST")


def test_json_up_to_the_depth_limit_is_accepted(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    body = '{"args": {"by": 1}, "scope": {"x": ' + deep(62) + "}}"
    response = client.post("/api/v1/workspaces/ws/panels/counter/tools/increment/", body,
                           content_type="application/json")
    assert response.status_code == 200, response.content


# ---------------------------------------------------------------- failed logins


def obtain(client: Any = None, address: str = "10.0.0.1", **body: Any) -> Any:
    return (client or APIClient()).post(TOKEN, body, format="json", REMOTE_ADDR=address)


def test_wrong_passwords_are_throttled_per_username(alice: Any, caplog: Any) -> None:
    for attempt in range(10):
        assert_error(obtain(address=f"10.0.1.{attempt}", username="alice", password="wrong"), 401, "UNAUTHENTICATED")
    refused = obtain(address="10.0.2.1", username="alice", password=TEST_PASSWORD)
    error = assert_error(refused, 429, "THROTTLED")
    assert int(refused["Retry-After"]) >= 1 and error["details"]["retryAfter"] == int(refused["Retry-After"])
    assert any("login throttled" in record.getMessage() for record in caplog.records)
    # Someone else still signs in.
    assert obtain(address="10.0.2.1", username="bob", password="x").status_code == 401


def test_wrong_passwords_are_throttled_per_address(alice: Any, make_user: Any) -> None:
    make_user("zoe")
    for attempt in range(30):
        obtain(address="10.9.9.9", username=f"guess{attempt}", password="wrong")
    assert_error(obtain(address="10.9.9.9", username="zoe", password=TEST_PASSWORD), 429, "THROTTLED")
    assert obtain(address="10.9.9.8", username="zoe", password=TEST_PASSWORD).status_code == 200


def test_successful_logins_are_not_counted(alice: Any) -> None:
    for _ in range(15):
        assert obtain(username="alice", password=TEST_PASSWORD).status_code == 200


def test_the_login_page_follows_the_same_rule(alice: Any) -> None:
    client = Client(REMOTE_ADDR="10.3.3.3")
    for _ in range(10):
        assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    refused = client.post("/accounts/login/", {"username": "alice", "password": TEST_PASSWORD})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert b"Too many failed sign-ins" in refused.content
    assert "_auth_user_id" not in client.session
    # The token endpoint counts the page's failures too.
    assert_error(obtain(address="10.4.4.4", username="alice", password=TEST_PASSWORD), 429, "THROTTLED")


def test_a_workspace_one_is_not_in_answers_like_a_missing_one(alice: Any) -> None:
    not_member = obtain(username="alice", password=TEST_PASSWORD, workspace_id="elsewhere")
    missing = obtain(username="alice", password=TEST_PASSWORD, workspace_id="nowhere0")
    assert not_member.status_code == missing.status_code == 400
    assert not_member.content.replace(b"elsewhere", b"X") == missing.content.replace(b"nowhere0", b"X")


# ---------------------------------------------------------------- API rates


def test_the_api_rate_answers_429_with_retry_after(world: World, api_client_for: Any, monkeypatch: Any) -> None:
    from workspaces.api import throttling

    monkeypatch.setattr(throttling.UserRateThrottle, "rate", "3/min", raising=False)
    client = api_client_for(world.owner)
    for _ in range(3):
        assert client.get("/api/v1/workspaces/").status_code == 200
    refused = client.get("/api/v1/workspaces/")
    assert_error(refused, 429, "THROTTLED")
    assert int(refused["Retry-After"]) >= 1
    assert api_client_for(world.editor).get("/api/v1/workspaces/").status_code == 200  # per user


def test_anonymous_callers_are_counted_per_address(db: None, monkeypatch: Any) -> None:
    from workspaces.api import throttling

    monkeypatch.setattr(throttling.AnonRateThrottle, "rate", "2/min", raising=False)
    client = APIClient()

    def refresh(address: str) -> Any:
        return client.post("/api/v1/auth/token/refresh/", {"refresh": "x"}, format="json", REMOTE_ADDR=address)

    for _ in range(2):
        assert refresh("10.5.5.5").status_code == 401
    assert_error(refresh("10.5.5.5"), 429, "THROTTLED")
    assert refresh("10.5.5.6").status_code == 401


# ---------------------------------------------------------------- refusals that explain


def test_expired_and_invalid_tokens_say_which(alice: Any) -> None:
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=5))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert assert_error(client.get("/api/v1/workspaces/"), 401, "UNAUTHENTICATED")["message"] == (
        "The token has expired; get a new one with /api/v1/auth/token/refresh/")
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    assert assert_error(client.get("/api/v1/workspaces/"), 401, "UNAUTHENTICATED")["message"] == (
        "The token is not valid")


def test_a_trigger_body_without_the_args_wrapper_says_so(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner).post(
        "/api/v1/workspaces/ws/panels/counter/tools/increment/", {"by": 2}, format="json")
    message = assert_error(response, 400, "INVALID_REQUEST")["message"]
    assert "unknown fields 'by'" in message and "'args'" in message


def test_extension_configuration_for_an_undeclared_alias_is_refused(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    body = {"id": "m1", "source": MONITOR, "extensions": {"nope": {"baseURL": "https://example.com/"}}}
    message = assert_error(client.post("/api/v1/workspaces/ws/panels/", body, format="json"),
                           400, "INVALID_REQUEST")["message"]
    assert "'nope'" in message and "http" in message
    assert client.get("/api/v1/workspaces/ws/panels/m1/").status_code == 404


def test_unknown_paths_answer_as_in_production_with_debug_on(db: None, settings: Any) -> None:
    settings.DEBUG = True
    settings.MIDDLEWARE = [*settings.MIDDLEWARE[:2], "nexus.middleware.DebugNotFoundMiddleware",
                           *settings.MIDDLEWARE[2:]]
    api = Client().get("/api/v1/nothing/")
    assert_error(api, 404, "NOT_FOUND")
    page = Client().get("/no-such-page/")
    assert page.status_code == 404
    assert b"Back to your workspaces" in page.content and b"URLconf" not in page.content
