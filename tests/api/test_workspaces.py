"""Workspaces and members: successes, shapes and every refusal of their routes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import World, assert_error
from workspaces.models import Membership, Panel, Workspace

API = "/api/v1/workspaces"


# ---------------------------------------------------------------- workspaces


def test_list_shows_only_the_callers_workspaces(world: World, api_client_for: Any, make_workspace: Any) -> None:
    make_workspace("secret")
    response = api_client_for(world.viewer).get(f"{API}/")
    assert response.status_code == 200
    rows = {row["slug"]: row for row in response.json()}
    assert set(rows) == {"ws", "other"}
    assert rows["ws"]["role"] == "viewer" and rows["other"]["role"] == "owner"
    assert rows["ws"]["panelCount"] == 1
    assert rows["ws"]["maxPanels"] == 10
    assert set(rows["ws"]) == {"slug", "name", "maxPanels", "role", "panelCount", "quotas", "createdAt", "updatedAt"}
    assert rows["ws"]["quotas"] is None  # a viewer does not see them; owners do (tests/api/test_quotas.py)


def test_list_with_a_workspace_token_shows_that_workspace_only(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner, workspace="other").get(f"{API}/")
    assert [row["slug"] for row in response.json()] == ["other"]


def test_create_makes_the_caller_owner(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.outsider).post(f"{API}/", {"slug": "mine", "name": "Mine"}, format="json")
    assert response.status_code == 201
    assert response.json()["slug"] == "mine" and response.json()["role"] == "owner"
    assert Membership.objects.get(workspace__slug="mine").user == world.outsider


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "ws", "name": "Taken"},
        {"slug": "not a slug", "name": "x"},
        {"name": "no slug"},
        {"slug": "noname"},
        {"slug": "neg", "name": "x", "maxPanels": 0},
        ["not", "an", "object"],
    ],
)
def test_create_refusals(world: World, api_client_for: Any, body: Any) -> None:
    response = api_client_for(world.owner).post(f"{API}/", body, format="json")
    assert_error(response, 400, "INVALID_REQUEST")
    assert Workspace.objects.count() == 2


def test_get_one(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.editor).get(f"{API}/ws/")
    assert response.status_code == 200
    assert response.json()["slug"] == "ws" and response.json()["role"] == "editor"


def test_unknown_workspace_is_404_like_a_foreign_one(world: World, api_client_for: Any) -> None:
    assert_error(api_client_for(world.owner).get(f"{API}/nope/"), 404, "NOT_FOUND")
    assert_error(api_client_for(world.outsider).get(f"{API}/ws/"), 404, "NOT_FOUND")


def test_patch_renames(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    response = client.patch(f"{API}/ws/", {"name": "Renamed", "slug": "ignored"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["maxPanels"], response.json()["slug"]) == ("Renamed", 10, "ws")


@pytest.mark.parametrize("limit", [100_000, 3, None, "many"])
def test_owners_cannot_change_the_panel_limit(world: World, api_client_for: Any, limit: Any) -> None:
    """Limits are staff settings (admin console): an owner's attempt is a clear 400, and nothing changes."""
    Workspace.objects.filter(slug="ws").update(max_panels=5)
    client = api_client_for(world.owner)
    response = client.patch(f"{API}/ws/", {"name": "Renamed", "maxPanels": limit}, format="json")
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert "admin console" in error["message"]
    created = client.post(f"{API}/", {"slug": "big", "name": "Big", "maxPanels": limit}, format="json")
    assert_error(created, 400, "INVALID_REQUEST")
    workspace = Workspace.objects.get(slug="ws")
    assert (workspace.name, workspace.max_panels) == ("Ws", 5)
    assert not Workspace.objects.filter(slug="big").exists()
    assert client.get(f"{API}/ws/").json()["maxPanels"] == 5


def test_patch_refusals(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    assert_error(client.patch(f"{API}/ws/", {"name": ""}, format="json"), 400, "INVALID_REQUEST")


def test_delete_removes_the_workspace_and_its_panels(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner).delete(f"{API}/ws/")
    assert response.status_code == 204
    assert not Workspace.objects.filter(slug="ws").exists()
    assert not Panel.objects.filter(panel_id="counter").exists()


def test_put_is_not_allowed(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner).put(f"{API}/ws/", {"name": "x"}, format="json")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------- members


def test_members_list(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.viewer).get(f"{API}/ws/members/")
    assert response.status_code == 200
    assert [(m["username"], m["role"]) for m in response.json()] == [
        ("eddie", "editor"), ("olivia", "owner"), ("victor", "viewer"),
    ]


def test_owner_adds_changes_and_removes_a_member(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    added = client.post(f"{API}/ws/members/", {"username": "oscar", "role": "editor"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "editor"
    assert client.get(f"{API}/ws/members/oscar/").json()["role"] == "editor"
    changed = client.patch(f"{API}/ws/members/oscar/", {"role": "owner"}, format="json")
    assert changed.status_code == 200 and changed.json() == {**changed.json(), "username": "oscar", "role": "owner"}
    assert client.delete(f"{API}/ws/members/oscar/").status_code == 204
    assert not Membership.objects.filter(workspace=world.workspace, user=world.outsider).exists()


def test_role_defaults_to_viewer(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner).post(f"{API}/ws/members/", {"username": "oscar"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "viewer"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ghost", "role": "viewer"},
        {"username": "victor", "role": "viewer"},  # already a member
        {"username": "oscar", "role": "superuser"},
        {"role": "viewer"},
    ],
)
def test_add_member_refusals(world: World, api_client_for: Any, body: dict[str, str]) -> None:
    response = api_client_for(world.owner).post(f"{API}/ws/members/", body, format="json")
    assert_error(response, 400, "INVALID_REQUEST")


def test_unknown_member_is_404(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    assert_error(client.get(f"{API}/ws/members/oscar/"), 404, "NOT_FOUND")
    assert_error(client.patch(f"{API}/ws/members/oscar/", {"role": "editor"}, format="json"), 404, "NOT_FOUND")
    assert_error(client.delete(f"{API}/ws/members/ghost/"), 404, "NOT_FOUND")


def test_bad_role_in_patch_is_400(world: World, api_client_for: Any) -> None:
    response = api_client_for(world.owner).patch(f"{API}/ws/members/victor/", {"role": "god"}, format="json")
    assert_error(response, 400, "INVALID_REQUEST")


def test_the_last_owner_stays(world: World, api_client_for: Any) -> None:
    client = api_client_for(world.owner)
    assert_error(client.patch(f"{API}/ws/members/olivia/", {"role": "editor"}, format="json"),
                 400, "INVALID_REQUEST")
    assert_error(client.delete(f"{API}/ws/members/olivia/"), 400, "INVALID_REQUEST")
    assert Membership.objects.get(workspace=world.workspace, user=world.owner).role == "owner"
    # With a second owner, the first may step down.
    client.patch(f"{API}/ws/members/eddie/", {"role": "owner"}, format="json")
    assert client.patch(f"{API}/ws/members/olivia/", {"role": "viewer"}, format="json").status_code == 200
    assert_error(api_client_for(world.editor).delete(f"{API}/ws/members/eddie/"), 400, "INVALID_REQUEST")
