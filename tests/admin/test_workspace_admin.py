"""The workspace pages of the admin console: members go through the workspace service and its rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.admin.test_admin import messages_of
from tests.api.conftest import COUNTER, create_panel
from workspaces.models import Membership, Panel, Workspace

WORKSPACES = "/admin/workspaces/workspace/"


@pytest.fixture
def team(make_user: Any, make_workspace: Any) -> Any:
    """A workspace with one owner (olga) and one editor (ed)."""
    olga, ed = make_user("olga"), make_user("ed")
    return make_workspace("team", {olga: "owner", ed: "editor"})


def rows(workspace: Workspace) -> list[Membership]:
    """The inline's rows, in the order the admin shows them."""
    return list(Membership.objects.filter(workspace=workspace).order_by("workspace", "user"))


def change_form(workspace: Workspace, roles: dict[str, str], deleted: tuple[str, ...] = (),
                added: dict[Any, str] | None = None) -> dict[str, Any]:
    """POST data for the change page: each existing row with its new role, some marked deleted."""
    existing = rows(workspace)
    extra = list((added or {}).items())
    data: dict[str, Any] = {
        "slug": workspace.slug, "name": workspace.name, "max_panels": workspace.max_panels or "",
        "settings": "{}",
        "memberships-TOTAL_FORMS": str(len(existing) + len(extra)),
        "memberships-INITIAL_FORMS": str(len(existing)),
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "quota-TOTAL_FORMS": "0", "quota-INITIAL_FORMS": "0", "quota-MIN_NUM_FORMS": "0", "quota-MAX_NUM_FORMS": "1",
        "_save": "Save",
    }
    for index, membership in enumerate(existing):
        name = membership.user.username
        data.update({
            f"memberships-{index}-id": str(membership.pk),
            f"memberships-{index}-workspace": str(workspace.pk),
            f"memberships-{index}-user": str(membership.user_id),
            f"memberships-{index}-role": roles.get(name, membership.role),
        })
        if name in deleted:
            data[f"memberships-{index}-DELETE"] = "on"
    for offset, (user, role) in enumerate(extra, start=len(existing)):
        data.update({f"memberships-{offset}-workspace": str(workspace.pk),
                     f"memberships-{offset}-user": str(user.pk), f"memberships-{offset}-role": role})
    return data


def roles_of(workspace: Workspace) -> dict[str, str]:
    return {membership.user.username: membership.role for membership in rows(workspace)}


def save(client: Client, workspace: Workspace, data: dict[str, Any]) -> Any:
    return client.post(f"{WORKSPACES}{workspace.pk}/change/", data, follow=True)


def test_the_last_owner_cannot_be_removed(admin_client: Client, team: Workspace) -> None:
    response = save(admin_client, team, change_form(team, {}, deleted=("olga",)))
    assert "at least one owner" in response.content.decode()
    assert roles_of(team) == {"olga": "owner", "ed": "editor"}


def test_the_last_owner_cannot_be_demoted(admin_client: Client, team: Workspace) -> None:
    response = save(admin_client, team, change_form(team, {"olga": "viewer"}))
    assert "at least one owner" in response.content.decode()
    assert roles_of(team) == {"olga": "owner", "ed": "editor"}


def test_ownership_is_handed_over_in_one_save(admin_client: Client, team: Workspace) -> None:
    response = save(admin_client, team, change_form(team, {"ed": "owner"}, deleted=("olga",)))
    assert response.status_code == 200 and "at least one owner" not in response.content.decode()
    assert roles_of(team) == {"ed": "owner"}


def test_members_are_added_and_renamed_workspaces_saved(
    admin_client: Client, team: Workspace, make_user: Any
) -> None:
    vic = make_user("vic")
    data = change_form(team, {}, added={vic: "viewer"})
    data.update(name="Renamed team", max_panels="4")
    response = save(admin_client, team, data)
    assert response.status_code == 200
    assert roles_of(team) == {"olga": "owner", "ed": "editor", "vic": "viewer"}
    team.refresh_from_db()
    assert (team.name, team.max_panels, team.panel_limit) == ("Renamed team", 4, 4)


def test_adding_a_workspace_with_its_owner(admin_client: Client, make_user: Any) -> None:
    nora = make_user("nora")
    data = {
        "slug": "fresh", "name": "Fresh", "max_panels": "", "settings": "{}",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-user": str(nora.pk), "memberships-0-role": "owner", "_save": "Save",
        "quota-TOTAL_FORMS": "0", "quota-INITIAL_FORMS": "0", "quota-MIN_NUM_FORMS": "0", "quota-MAX_NUM_FORMS": "1",
    }
    response = admin_client.post(f"{WORKSPACES}add/", data, follow=True)
    assert response.status_code == 200
    assert roles_of(Workspace.objects.get(slug="fresh")) == {"nora": "owner"}


def test_deleting_a_workspace_deletes_its_panels_through_the_service(
    admin_client: Client, team: Workspace
) -> None:
    create_panel(team, COUNTER, "counter")
    response = admin_client.post(f"{WORKSPACES}{team.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert not Workspace.objects.filter(pk=team.pk).exists()
    assert not Panel.objects.filter(panel_id="counter").exists()
    assert not Membership.objects.filter(workspace_id=team.pk).exists()
    assert any("deleted" in message for message in messages_of(response))
