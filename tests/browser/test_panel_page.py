"""What the live panel page shows a new user: the panel's status, Start and Re-mount, the samples'
controls and charts, and toasts only for the person whose click raised them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Site

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

STACKED_INPUT_PANEL = """<NexusPanel id="stacked" title="Stacked">
  <Data><State name="name" type="string" default="" /></Data>
  <Logic><Tool name="go"><Handler>return $state.name;</Handler></Tool></Logic>
  <View>
    <Layout strategy="stack" gap="md">
      <Input bind="$state.name" placeholder="Name" />
      <Button label="Go" trigger="go" />
    </Layout>
  </View>
</NexusPanel>"""


def button(page: Page, label: str) -> Locator:
    return page.get_by_role("button", name=label, exact=True)


def stopped_panel(pages: Site, panel_id: str) -> None:
    pages.create(panel_id, STACKED_INPUT_PANEL)
    response = pages.live.api("POST", f"/api/v1/workspaces/acme/panels/{panel_id}/stop/")
    assert response.status_code == 200 and response.json()["status"] == "stopped", response.text


def test_stopped_panel_shows_its_status_with_tools_off_and_start(pages: Site) -> None:
    stopped_panel(pages, "stopped-one")
    page = pages.open_panel("stopped-one")
    badge = page.locator(".nx-conn")
    expect(badge.locator(".nx-conn-text")).to_have_text("Stopped")
    expect(badge).not_to_have_class(re.compile("nx-conn--live"))
    expect(page.locator(".nx-lifecycle")).to_contain_text("stopped")
    expect(button(page, "Go")).to_be_disabled()
    expect(page.get_by_role("textbox", name="Name")).to_be_disabled()

    button(page, "Start").click()
    expect(badge.locator(".nx-conn-text")).to_have_text("Live")
    expect(page.locator(".nx-lifecycle")).to_be_hidden()
    expect(button(page, "Go")).to_be_enabled()
    assert pages.live.api("GET", "/api/v1/workspaces/acme/panels/stopped-one/").json()["status"] == "running"


def test_viewers_of_a_stopped_panel_get_no_start(pages: Site) -> None:
    stopped_panel(pages, "stopped-two")
    page = pages.open_panel("stopped-two", user="carol")
    expect(page.locator(".nx-lifecycle")).to_contain_text("stopped")
    expect(button(page, "Start")).to_be_hidden()
    expect(button(page, "Go")).to_be_disabled()


def test_a_panel_stopped_while_open_turns_off_live(pages: Site) -> None:
    pages.create("stopped-live", STACKED_INPUT_PANEL)
    page = pages.open_panel("stopped-live")
    expect(button(page, "Go")).to_be_enabled()
    pages.live.api("POST", "/api/v1/workspaces/acme/panels/stopped-live/stop/")
    expect(page.locator(".nx-conn-text")).to_have_text("Stopped")
    expect(button(page, "Go")).to_be_disabled()


def test_failed_mount_shows_its_error_and_offers_remount(pages: Site) -> None:
    page = pages.open_panel("broken")
    expect(page.locator(".nx-conn-text")).to_have_text("Mount failed")
    expect(page.get_by_role("alert")).to_contain_text("cannot start: disk missing")
    button(page, "Re-mount").click()
    # The handler fails again: the page says so, with the new error, and still offers Re-mount.
    expect(page.locator(".nx-lifecycle")).to_contain_text("cannot start: disk missing")
    expect(button(page, "Re-mount")).to_be_enabled()


def test_input_directly_in_a_stack_leaves_no_gap(pages: Site) -> None:
    pages.create("stacked", STACKED_INPUT_PANEL)
    page = pages.open_panel("stacked")
    field = page.locator(".nx-field").bounding_box()
    go = page.get_by_role("button", name="Go", exact=True).bounding_box()
    assert field is not None and go is not None
    assert field["height"] < 60, field  # the input's own height, not a 12rem flex basis
    assert go["y"] - (field["y"] + field["height"]) < 40, (field, go)


def test_toasts_go_to_the_requester_and_repeated_ones_collapse(pages: Site) -> None:
    mine = pages.open_panel("todo")
    theirs = pages.open_panel("todo", user="dave")
    for _ in range(3):
        button(mine, "Add").click()
        expect(button(mine, "Add")).to_be_enabled()
    toast = mine.locator(".nx-toast")
    expect(toast).to_have_count(1)
    expect(toast).to_contain_text("Nothing to add")
    expect(toast.locator(".nx-toast-count")).to_have_text("×3")
    # A change made after the toasts reaches the other viewer; the toasts did not.
    mine.get_by_role("textbox", name="New task...").fill("After the toasts")
    button(mine, "Add").click()
    expect(theirs.get_by_role("checkbox", name="After the toasts")).to_be_visible()
    expect(theirs.locator(".nx-toast")).to_have_count(0)


def test_monitor_sample_status_chart_card_and_target(pages: Site) -> None:
    page = pages.open_panel("monitor")
    badge = page.locator(".nx-panel-body .nx-badge")
    expect(badge).to_have_text("unknown")
    expect(badge).not_to_have_class(re.compile("nx-badge--error"))
    expect(page.get_by_text("Checks GET /health on the base URL set for the http extension")).to_be_visible()
    card = page.locator(".nx-container").filter(has=page.locator(".nx-container-title", has_text="Response time"))
    expect(card.locator(".nx-chart")).to_be_visible()
    button(page, "Check").click()
    expect(badge).to_have_text("online")
    expect(badge).to_have_class(re.compile("nx-badge--success"))
    expect(card.locator(".nx-chart-unit")).to_have_text("ms")
    expect(card.locator("svg")).to_have_attribute("aria-label", re.compile(r"of ms \(ms\)"))
