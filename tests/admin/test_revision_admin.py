"""Revisions in the admin: listed on the panel, each with its diff, restorable through the service."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import COUNTER, create_panel
from workspaces.models import Panel, PanelRevision
from workspaces.services import panels as panel_service

REVISIONS = "/admin/workspaces/panelrevision/"


@pytest.fixture
def edited(transactional_db: None, make_workspace: Any) -> Panel:
    panel = create_panel(make_workspace("lab"), COUNTER, "counter")
    renamed = COUNTER.replace('title="Counter"', 'title="Tally"')
    from asgiref.sync import async_to_sync

    async_to_sync(panel_service.update_source)(panel, renamed, message="rename")
    return Panel.objects.select_related("workspace").get(pk=panel.pk)


def test_the_panel_page_lists_its_revisions(admin_client: Client, edited: Panel) -> None:
    page = admin_client.get(f"/admin/workspaces/panel/{edited.pk}/change/").content.decode()
    second = PanelRevision.objects.get(panel=edited, number=2)
    assert f"{REVISIONS}{second.pk}/change/" in page and "rename" in page
    assert page.index(">r2<") < page.index(">r1<"), "newest first"


def test_a_revision_shows_its_diff_against_the_previous(admin_client: Client, edited: Panel) -> None:
    second = PanelRevision.objects.get(panel=edited, number=2)
    page = admin_client.get(f"{REVISIONS}{second.pk}/change/").content.decode()
    assert "--- r1" in page and "+++ r2" in page
    assert "-&lt;NexusPanel id=&quot;counter&quot; title=&quot;Counter&quot;" in page
    assert "+&lt;NexusPanel id=&quot;counter&quot; title=&quot;Tally&quot;" in page
    assert "Restore revision 2" in page


def test_restore_makes_a_new_revision_through_the_service(admin_client: Client, edited: Panel) -> None:
    first = PanelRevision.objects.get(panel=edited, number=1)
    response = admin_client.post(f"{REVISIONS}{first.pk}/restore/", follow=True)
    assert response.status_code == 200
    assert any("restored as revision 3" in str(m) for m in response.context["messages"])
    panel = Panel.objects.get(pk=edited.pk)
    assert panel.title == "Counter" and panel.source == COUNTER
    assert PanelRevision.objects.get(panel=panel, number=3).message == "Restored revision 1"
    assert admin_client.get(f"{REVISIONS}{first.pk}/restore/").status_code == 405


def test_restore_action_takes_exactly_one(admin_client: Client, edited: Panel) -> None:
    both = list(PanelRevision.objects.filter(panel=edited).values_list("pk", flat=True))
    response = admin_client.post(REVISIONS, {"action": "restore", "_selected_action": both}, follow=True)
    assert any("exactly one" in str(m) for m in response.context["messages"])
    assert PanelRevision.objects.filter(panel=edited).count() == 2
    response = admin_client.post(REVISIONS, {"action": "restore", "_selected_action": [min(both)]}, follow=True)
    assert Panel.objects.get(pk=edited.pk).title == "Counter"


def test_staff_without_panel_rights_may_not_restore(edited: Panel, make_user: Any) -> None:
    from django.contrib.auth.models import Permission

    from tests.conftest import TEST_PASSWORD

    clerk = make_user("clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_panelrevision"))
    client = Client()
    client.post("/admin/login/?next=/admin/", {"username": "clerk", "password": TEST_PASSWORD})
    first = PanelRevision.objects.get(panel=edited, number=1)
    assert client.get(f"{REVISIONS}{first.pk}/change/").status_code == 200
    assert client.post(f"{REVISIONS}{first.pk}/restore/").status_code == 403
    assert Panel.objects.get(pk=edited.pk).title == "Tally"
