"""What a new user meets first, in Chromium: creating a workspace, the guides, the activity drawer, the admin."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Site
from tests.support.servers import manage

pytestmark = pytest.mark.slow

CHATTY = """<NexusPanel id="chatty" title="Chatty">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Tool name="talk"><Handler><![CDATA[
      $state.n = $state.n + 1;
      if ($state.n > 1 && $state.n < 100) $log.warn('talked', $state.n, 'times');
      else $log('first words');
    ]]></Handler></Tool>
    <Tool name="fail"><Handler>throw new Error('no words left');</Handler></Tool>
  </Logic>
  <View><Layout strategy="row"><Button label="Talk" trigger="talk" /><Button label="Fail" trigger="fail" /></Layout></View>
</NexusPanel>"""


def make_superuser(pages: Site, username: str, member_of: str | None = None) -> None:
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from workspaces.models import Membership, Workspace\n"
        f"user = get_user_model().objects.create_superuser({username!r}, '', {PASSWORD!r})\n"
    )
    if member_of:
        script += f"Membership.objects.create(user=user, workspace=Workspace.objects.get(slug={member_of!r}), role='owner')\n"
    manage("shell", "-c", script, env=pages.live.env)


def test_a_new_superuser_creates_a_workspace_from_the_page(pages: Site) -> None:
    make_superuser(pages, "root")
    page = pages.page("root", "/workspaces/")
    expect(page.get_by_text("You are not a member of any workspace yet")).to_be_visible()
    expect(page.get_by_role("heading", name="Create a workspace")).to_be_visible()
    expect(page.locator("#content").get_by_role("link", name="admin")).to_have_attribute("href", "/admin/")

    page.get_by_label("Name").fill("Root's lab")
    page.get_by_role("button", name="Create workspace").click()
    expect(page).to_have_url(f"{pages.url}/workspaces/roots-lab/")
    expect(page.get_by_role("heading", name="Root's lab", level=1)).to_be_visible()

    page.goto("/workspaces/")
    page.get_by_label("Name").fill("Again")
    page.get_by_label("Slug").fill("roots-lab")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    expect(page.locator(".nx-ws-item")).to_have_count(1)


def test_pages_link_the_guides_and_the_api_docs(pages: Site) -> None:
    page = pages.page("alice", "/workspaces/")
    help_links = page.get_by_role("navigation", name="Documentation")
    expect(help_links.get_by_role("link", name="API docs")).to_have_attribute("href", "/api/v1/docs/")
    help_links.get_by_role("link", name="NXML reference").click()
    expect(page).to_have_url(f"{pages.url}/docs/nxml/")
    expect(page.get_by_role("heading", name="NXML reference", level=1)).to_be_visible()
    expect(page.locator("#content").get_by_role("link", name="tutorial").first).to_have_attribute(
        "href", "/docs/tutorial/"
    )
    expect(page.get_by_role("heading", name="Escaping and CDATA")).to_be_visible()
    help_links.get_by_role("link", name="Tutorial").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("first panel")


def test_the_activity_drawer_follows_the_runs(pages: Site) -> None:
    pages.create("chatty", CHATTY)
    page = pages.open_panel("chatty")
    page.get_by_role("button", name="Talk").click()
    drawer = page.locator("#nexus-activity")
    drawer.locator("summary").click()
    runs = drawer.locator(".nx-activity-run")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("talk")
    expect(runs.first).to_contain_text("first words")

    page.get_by_role("button", name="Talk").click()
    page.get_by_role("button", name="Fail").click()
    expect(runs).to_have_count(3)  # arrives without reloading: the open drawer polls
    expect(runs.nth(0)).to_contain_text("EXECUTION_ERROR")
    expect(runs.nth(0)).to_contain_text("no words left")
    expect(runs.nth(1).locator(".nx-activity-log--warn")).to_have_text(re.compile(r"warn\s+talked 2 times"))

    drawer.locator("summary").click()  # closed: collapsed, and it stops polling
    expect(runs.first).to_be_hidden()


def test_staff_move_between_the_live_page_and_the_admin(pages: Site) -> None:
    make_superuser(pages, "staffer", member_of="acme")
    page = pages.open_panel("counter", user="staffer")
    page.get_by_role("link", name="Edit in admin").click()
    expect(page).to_have_url(re.compile(r"/admin/workspaces/panel/\d+/change/$"))
    page.get_by_role("link", name="Open", exact=True).click()
    expect(page).to_have_url(f"{pages.url}/workspaces/acme/panels/counter/")
    expect(pages.open_panel("counter").get_by_role("link", name="Edit in admin")).to_have_count(0)  # alice: no staff
