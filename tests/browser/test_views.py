"""The page views through Django's test client: what the browser tests cannot set up cheaply."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from workspaces.views import activity_label

NOW = timezone.now()


@pytest.mark.parametrize(
    ("ago", "label"),
    [(timedelta(seconds=5), "just now"), (timedelta(minutes=5, seconds=10), "5\xa0minutes ago"),
     (timedelta(days=3, hours=4), "3\xa0days ago")],
)
def test_activity_label(ago: timedelta, label: str) -> None:
    assert activity_label(NOW - ago, NOW) == label


def test_activity_label_without_a_date() -> None:
    assert activity_label(None, NOW) == "never"


def _panel(workspace: Any, panel_id: str, **fields: Any) -> Any:
    from workspaces.models import Panel

    return Panel.objects.create(workspace=workspace, panel_id=panel_id, source="<NexusPanel/>", **fields)


def test_panel_list_shows_status_activity_and_escapes_titles(make_user: Any, make_workspace: Any) -> None:
    alice = make_user("alice")
    acme = make_workspace("acme", {alice: "viewer"})
    _panel(acme, "one", title="<b>One</b>", status="running", last_activity=NOW - timedelta(hours=2))
    _panel(acme, "two", title="", status="stopped")
    client = Client()
    client.force_login(alice)
    response = client.get("/workspaces/acme/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "&lt;b&gt;One&lt;/b&gt;" in body and "<b>One</b>" not in body
    assert "2\xa0hours ago" in body
    assert 'nx-badge--warn"><span class="nx-badge-dot" aria-hidden="true"></span>stopped' in body
    assert '>two</a>' in body, "a panel without a title is listed under its id"


def test_pages_act_as_the_local_user_when_authentication_is_off(db: None, settings: Any) -> None:
    settings.NEXUS = dataclasses.replace(settings.NEXUS, AUTH_ENABLED=False)
    response = Client().get("/workspaces/")
    assert response.status_code == 200
    assert 'href="/workspaces/default/"' in response.content.decode()
    assert Client().get("/workspaces/default/").status_code == 200


def test_pages_need_a_login_when_authentication_is_on(db: None) -> None:
    response = Client().get("/workspaces/default/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/workspaces/default/"


def test_not_found_page_for_a_stranger(make_user: Any, make_workspace: Any) -> None:
    stranger = make_user("mallory")
    secret = make_workspace("secret", {make_user("owner"): "owner"})
    _panel(secret, "plans", title="Secret plans")
    client = Client()
    client.force_login(stranger)
    for path in ["/workspaces/secret/", "/workspaces/secret/panels/plans/", "/workspaces/secret/panels/plans/state/"]:
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 404, path
        assert "Secret plans" not in response.content.decode()
        assert "<h1" in response.content.decode() and "Not found" in response.content.decode()


def test_the_guides_are_pages_and_nothing_else_of_docs(db: None) -> None:
    client = Client()
    page = client.get("/docs/nxml/")
    assert page.status_code == 200
    body = page.content.decode()
    assert '<h1 id="nxml-reference">NXML reference</h1>' in body and 'href="/docs/tutorial/"' in body
    assert 'href="#escaping-and-cdata"' in body and '<h2 id="escaping-and-cdata">' in body
    assert "&lt;![CDATA[" in body  # examples are shown as text
    assert client.get("/docs/tutorial/").status_code == 200
    assert client.get("/docs/security/").status_code == 404


def test_creating_a_workspace_from_the_page(make_user: Any) -> None:
    from workspaces.models import Membership

    client = Client()
    client.force_login(make_user("newbie"))
    assert "Create a workspace" in client.get("/workspaces/").content.decode()
    response = client.post("/workspaces/", {"name": "My Lab"})
    assert response.status_code == 302 and response["Location"] == "/workspaces/my-lab/"
    assert Membership.objects.get(workspace__slug="my-lab").role == "owner"
    again = client.post("/workspaces/", {"name": "Other", "slug": "my-lab"})
    assert again.status_code == 400 and "already exists" in again.content.decode()
    assert client.post("/workspaces/", {"name": "!!!"}).status_code == 400


def test_the_panel_page_lists_its_schedules(transactional_db: None, make_user: Any, make_workspace: Any) -> None:
    from asgiref.sync import async_to_sync

    from tests.api.conftest import MONITOR
    from workspaces.services.panels import create_panel

    alice = make_user("alice")
    acme = make_workspace("acme", {alice: "viewer"})
    async_to_sync(create_panel)(acme, MONITOR, panel_id="monitor")
    client = Client()
    client.force_login(alice)
    body = client.get("/workspaces/acme/panels/monitor/").content.decode()
    assert '<tr data-schedule="everyMinute">' in body
    assert "<code>checkHealth</code>" in body and "<code>every 1m</code>" in body
    assert "never" in body, "a schedule that has not run yet says so"
