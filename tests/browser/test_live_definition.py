"""An open panel page follows an update in place: new title and view without a reload, same socket."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.integration.conftest import example
from tests.integration.test_definition_updates import with_greeting

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


def test_the_open_page_redraws_the_new_view_and_its_new_button_works(pages: Site) -> None:
    source = example("counter").replace('<Metric id="count"', '<Text content="Greeting: {$state.greeting}" />\n'
                                                              '      <Metric id="count"')
    source = source.replace("</Data>", '  <State name="greeting" type="string" default="-" />\n  </Data>')
    pages.create("redrawn", source)
    page = pages.open_panel("redrawn")
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("button", name="+5", exact=True).click()
    expect(page.locator(".nx-metric")).to_contain_text("5")

    edited = with_greeting(source).replace(
        '<State name="greeting" type="string" default="hello" />\n', "")
    response = pages.live.api("PATCH", "/api/v1/workspaces/acme/panels/redrawn/", json={"source": edited})
    assert response.status_code == 200, response.text

    expect(page.locator(".nx-panel-title")).to_have_text("Greeter")
    expect(page.locator("[data-revision]")).to_have_attribute("data-revision", "2")
    greet = page.get_by_role("button", name="Greet", exact=True)
    expect(greet).to_be_visible()
    expect(page.locator(".nx-metric")).to_contain_text("5")  # the state was kept
    greet.click()
    expect(page.get_by_text("Greeting: hi there")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
