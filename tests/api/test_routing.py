"""Unknown URLs, wrong methods and the kernel routes' slash handling, all as JSON errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import World, assert_error


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing/", "/api/v2/workspaces/", "/api/v1/workspaces/ws/panels/counter/tools/", "/panels/a/b/c/d"],
)
def test_unknown_api_urls_answer_json_404(db: None, path: str) -> None:
    response = Client().get(path)
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, "NOT_FOUND")


def test_other_unknown_urls_keep_the_html_404(db: None) -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert "application/json" not in response["Content-Type"]


def test_crash_under_api_answers_json_500(world: World, api_client_for: Any, monkeypatch: Any) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("workspaces.services.panels.get_panel", explode)
    client = api_client_for(world.owner)
    client.raise_request_exception = False
    response = client.get("/api/v1/workspaces/ws/panels/counter/")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "kaboom" not in response.content.decode()


def test_wrong_method_is_405(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    assert_error(client.put("/api/v1/workspaces/ws/panels/counter/", {}, format="json"), 405, "METHOD_NOT_ALLOWED")
    assert_error(client.get("/api/v1/workspaces/ws/panels/validate/"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("slash", ["", "/"])
def test_kernel_routes_accept_an_optional_trailing_slash(world: World, api_client_for: Any, slash: str) -> None:
    client = api_client_for(world.owner, workspace="ws")
    assert client.get(f"/panels{slash}").status_code == 200
    assert client.get(f"/panels/counter{slash}").json()["id"] == "counter"
    assert client.get(f"/panels/counter/state{slash}").json()["panelId"] == "counter"
    response = client.post(f"/panels/counter/trigger/increment{slash}", {"args": {"by": 1}}, format="json")
    assert response.json()["status"] == "success"


def test_kernel_routes_share_the_panels_of_the_workspace(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner, workspace="ws")
    listed = client.get("/panels").json()
    assert [panel["id"] for panel in listed["panels"]] == ["counter"]
    created = client.post("/panels", {"id": "k1", "source": world.counter.source}, format="json",
                          HTTP_HOST="kernel.test")
    assert created.status_code == 201
    assert created.json()["websocket"] == "ws://kernel.test/panels/k1/ws"
    rest = api_client_for(world.owner).get("/api/v1/workspaces/ws/panels/k1/")
    assert rest.status_code == 200
    assert client.delete("/panels/k1").status_code == 204


def test_kernel_routes_without_a_workspace_claim_use_the_default_workspace(
    world: World, api_client_for: Any, make_workspace: Any
) -> None:
    make_workspace("default", {world.editor: "editor"})
    client = api_client_for(world.editor)
    assert client.get("/panels").json()["panels"] == []
    assert client.post("/panels", {"id": "d1", "source": world.counter.source}, format="json").status_code == 201
    assert client.get("/api/v1/workspaces/default/panels/d1/").status_code == 200


# ---------------------------------------------------------------- original kernel: auth and from-nxml


def test_kernel_token_takes_json_or_form_and_username_or_email(world: World) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    from tests.conftest import TEST_PASSWORD

    get_user_model().objects.filter(pk=world.editor.pk).update(email="Eddie@Example.com")
    client = APIClient()
    as_json = client.post("/auth/token", {"username": "eddie", "password": TEST_PASSWORD}, format="json")
    as_form = client.post("/auth/token", {"email": "eddie@example.com", "password": TEST_PASSWORD})
    for response in (as_json, as_form):
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"access_token", "token_type"} and body["token_type"] == "bearer"
        assert AccessToken(body["access_token"])["sub"] == "eddie"
    scoped = client.post("/auth/token", {"username": "eddie", "password": TEST_PASSWORD, "workspace_id": "ws"},
                         format="json").json()["access_token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {scoped}")
    assert client.get("/panels").json()["panels"][0]["id"] == "counter"


def test_kernel_token_refusals(world: World) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    assert_error(client.post("/auth/token", {"username": "eddie", "password": "wrong"}, format="json"),
                 401, "UNAUTHENTICATED")
    assert_error(client.post("/auth/token", {"password": "x"}, format="json"), 400, "INVALID_REQUEST")
    assert_error(client.post("/auth/token", "{" * 100 + "}" * 100, content_type="application/json"),
                 400, "INVALID_REQUEST")


def test_kernel_me_names_the_caller(world: World, api_client_for: Any) -> None:
    body = api_client_for(world.owner, workspace="ws").get("/auth/me").json()
    assert body == {"username": "olivia", "email": "", "workspace_id": "ws", "workspaces": ["ws"]}
    assert api_client_for(world.owner).get("/auth/me").json()["workspaces"] == ["other", "ws"]
    assert_error(Client().get("/auth/me"), 401, "UNAUTHENTICATED")


def test_kernel_from_nxml_uses_the_document_id_with_a_suffix_when_taken(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.editor, workspace="ws")
    created = client.post("/panels/from-nxml", {"nxmlSource": world.counter.source, "initialState": {"count": 7}},
                          format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["panelId"].startswith("counter-") and body["initialState"]["count"] == 7
    assert body["websocket"].endswith(f"/panels/{body['panelId']}/ws")
    refused = client.post("/panels/from-nxml", {"nxmlSource": world.counter.source, "initialState": {"count": "x"}},
                          format="json")
    assert "count" in assert_error(refused, 400, "INVALID_REQUEST")["message"]
    assert_error(client.post("/panels/from-nxml", {"nxmlSource": world.counter.source,
                                                   "initialState": {"nope": 1}}, format="json"),
                 400, "INVALID_REQUEST")


def test_kernel_routes_without_a_workspace_claim_say_so(world: World, api_client_for: Any) -> None:
    message = assert_error(api_client_for(world.editor).get("/panels"), 404, "NOT_FOUND")["message"]
    assert "no `workspace_id` claim" in message
