"""The editor pages in Chromium: a panel written in the browser, checked as it is typed, saved,
edited, restored from its history; and a viewer who is offered none of it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

FIRST = """<NexusPanel id="tally" title="Tally">
  <Data>
    <State name="count" type="number" default="3" />
  </Data>
  <Logic>
    <Tool name="add" description="Add one">
      <Handler>$state.count = $state.count + 1;</Handler>
    </Tool>
  </Logic>
  <View>
    <Layout strategy="stack" gap="md">
      <Metric label="Tally count" value="{$state.count}" />
      <Button label="Add one" trigger="add" />
    </Layout>
  </View>
</NexusPanel>
"""
# Line 12 names a component NXML does not have.
BROKEN = FIRST.replace('<Metric label="Tally count"', '<Metrc label="Tally count"')
BROKEN_LINE = 12
SECOND = FIRST.replace(
    '      <Button label="Add one" trigger="add" />\n',
    '      <Button label="Add one" trigger="add" />\n      <Button label="Reset tally" trigger="reset" />\n',
).replace(
    "  </Logic>",
    '    <Tool name="reset" description="Back to zero">\n      <Handler>$state.count = 0;</Handler>\n'
    "    </Tool>\n  </Logic>",
)


def replace_source(page: Page, source: str) -> None:
    """Select everything in the editor and type the new source in its place."""
    content = page.locator("#nx-editor-code .cm-content")
    content.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    # One input event per source: CodeMirror's tag auto-closing reacts to a typed '>' only.
    page.keyboard.insert_text(source)


def test_write_check_save_edit_and_restore_a_panel(pages: Site) -> None:
    page = pages.page("alice", "/workspaces/acme/")
    page.get_by_role("link", name="New panel").click()
    page.wait_for_url("**/workspaces/acme/panels/new/")
    expect(page.locator("#nx-editor-code[data-ready=true] .cm-editor")).to_be_visible()

    replace_source(page, BROKEN)
    problem = page.locator(".nx-editor-problem")
    expect(problem).to_have_count(1)
    expect(problem).to_have_attribute("data-line", str(BROKEN_LINE))
    expect(problem).to_contain_text("Metrc")
    marked = page.locator(".cm-line").nth(BROKEN_LINE - 1).locator(".cm-lintRange-error")
    expect(marked).to_have_text("<Metrc")
    expect(page.locator("#nx-editor-status")).to_have_attribute("data-valid", "false")

    replace_source(page, FIRST)
    expect(page.locator("#nx-editor-status")).to_have_text("Valid NXML")
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    preview = page.locator("#nx-editor-preview")
    expect(preview.locator(".nx-metric")).to_contain_text("Tally count")
    expect(preview.locator(".nx-metric")).to_contain_text("3")
    expect(preview.get_by_role("button", name="Add one")).to_be_disabled()

    page.get_by_role("button", name="Create panel").click()
    page.wait_for_url("**/workspaces/acme/panels/tally/")
    expect(page.locator(".nx-conn[data-state=live]")).to_be_visible()
    expect(page.locator(".nx-panel-title")).to_have_text("Tally")
    page.get_by_role("button", name="Add one").click()
    expect(page.locator(".nx-metric")).to_contain_text("4")

    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url("**/panels/tally/edit/")
    expect(page.locator("#nx-editor-code[data-ready=true]")).to_be_visible()
    replace_source(page, SECOND)
    expect(page.locator("#nx-editor-status")).to_have_text("Valid NXML")
    expect(page.locator("#nx-editor-preview").get_by_role("button", name="Reset tally")).to_be_visible()
    page.get_by_label("Change note").fill("A reset button")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*/workspaces/acme/panels/tally/$"))
    expect(page.locator(".nx-conn[data-state=live]")).to_be_visible()
    expect(page.locator(".nx-metric")).to_contain_text("4")  # the state survived the edit
    page.get_by_role("button", name="Reset tally").click()
    expect(page.locator(".nx-metric")).to_contain_text("0")

    page.get_by_role("link", name="History").click()
    page.wait_for_url("**/panels/tally/history/")
    expect(page.locator(".nx-revision")).to_have_count(2)
    expect(page.locator(".nx-revision").first).to_contain_text("A reset button")
    added = page.locator(".nx-revision").first.locator(".nx-diff-line--add", has_text='label="Reset tally"')
    expect(added).to_have_count(1)
    page.get_by_role("button", name="Restore revision 1").click()
    page.wait_for_url(re.compile(r".*/workspaces/acme/panels/tally/$"))
    expect(page.locator(".nx-conn[data-state=live]")).to_be_visible()
    expect(page.get_by_role("button", name="Add one")).to_be_visible()
    expect(page.get_by_role("button", name="Reset tally")).to_have_count(0)
    revisions = pages.live.api("GET", "/api/v1/workspaces/acme/panels/tally/revisions/").json()
    assert len(revisions["results"]) == 3, revisions


def test_save_with_errors_keeps_the_text_and_a_conflict_offers_a_reload(pages: Site) -> None:
    pages.create("conflicted", FIRST.replace('id="tally"', 'id="conflicted"'))
    page = pages.page("dave", "/workspaces/acme/panels/conflicted/edit/")
    expect(page.locator("#nx-editor-code[data-ready=true]")).to_be_visible()
    replace_source(page, BROKEN)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved")
    assert "<Metrc" in page.locator(".cm-content").inner_text()

    # Someone else saves meanwhile: this page's base revision is now stale.
    other = pages.live.api("PATCH", "/api/v1/workspaces/acme/panels/conflicted/",
                           json={"source": SECOND.replace('id="tally"', 'id="conflicted"')})
    assert other.status_code == 200, other.text
    replace_source(page, FIRST.replace('id="tally"', 'id="conflicted"').replace("Tally count", "Mine"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("someone else saved a newer revision")
    assert "Mine" in page.locator(".cm-content").inner_text()
    page.get_by_role("button", name="Reload the latest").click()
    expect(page.locator(".cm-content")).to_contain_text("Reset tally")


def test_a_viewer_is_offered_no_authoring(pages: Site) -> None:
    page = pages.page("carol", "/workspaces/acme/")
    expect(page.locator(".nx-table")).to_be_visible()
    expect(page.get_by_role("link", name="New panel")).to_have_count(0)
    page = pages.open_panel("counter", user="carol")
    for name in ("Edit", "History", "Delete"):
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Duplicate")).to_have_count(0)
    editor = pages.page("alice", "/workspaces/acme/panels/counter/")
    expect(editor.get_by_role("link", name="Delete", exact=True)).to_be_visible()


def test_completion_from_the_schema_and_handlers_read_as_javascript(pages: Site) -> None:
    page = pages.page("alice", "/workspaces/acme/panels/new/")
    expect(page.locator("#nx-editor-code[data-ready=true]")).to_be_visible()
    replace_source(page, FIRST)
    handler = page.locator(".cm-line", has_text="$state.count = $state.count + 1;")
    # As XML the handler's body is one run of text; as JavaScript its number is a token of its own.
    expect(handler.locator("span", has_text=re.compile(r"^1$"))).to_have_count(1)

    layout_end = page.locator(".cm-line", has_text='<Button label="Add one"')
    layout_end.click()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type("<Stat")
    options = page.locator(".cm-tooltip-autocomplete li")
    expect(options.filter(has_text="StatusBadge")).to_have_count(1)
    expect(options.filter(has_text=re.compile(r"^State$"))).to_have_count(0), "a <State> is no view component"
    page.keyboard.press("Enter")
    page.keyboard.type(" st")
    expect(options.filter(has_text="status")).to_have_count(1)  # StatusBadge's own attribute
    expect(options.filter(has_text="strategy")).to_have_count(0)  # Layout's, not this element's
