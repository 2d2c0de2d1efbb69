"""The Django pages in Debian's Chromium against a real Nexus server (daphne, loopback)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS_DIR, MARKUP, PASSWORD, Site

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PHONE = {"width": 390, "height": 844}
# Panels were created when the module started: a slow machine may already count minutes.
RECENT = re.compile(r"^(just now|\d+\s(minute|minutes) ago)$")


def metric(page: Page, label: str) -> Any:
    return page.locator(".nx-metric").filter(has=page.locator(".nx-metric-label", has_text=label)).locator(
        ".nx-metric-value"
    )


def button(page: Page, label: str) -> Any:
    return page.get_by_role("button", name=label, exact=True)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"browser-{name}.png"), full_page=True)


def panel_row(page: Page, panel_id: str) -> Any:
    return page.locator(f"tr[data-panel-id='{panel_id}']")


# ------------------------------------------------------------------ access


def test_log_in_through_the_login_page(pages: Site) -> None:
    page = pages.page(None, "/workspaces/acme/")
    expect(page).to_have_url(f"{pages.url}/accounts/login/?next=/workspaces/acme/")
    screenshot(page, "login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{pages.url}/workspaces/acme/")
    expect(page.get_by_role("heading", name="acme", level=1)).to_be_visible()
    expect(page.locator(".nx-user")).to_contain_text("alice")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{pages.url}/accounts/login/")
    page.goto("/workspaces/")
    expect(page).to_have_url(f"{pages.url}/accounts/login/?next=/workspaces/")


@pytest.mark.parametrize("path", ["/workspaces/", "/workspaces/acme/", "/workspaces/acme/panels/counter/",
                                  "/workspaces/acme/panels/counter/state/"])
def test_anonymous_users_are_sent_to_the_login_page(pages: Site, path: str) -> None:
    response = httpx.get(f"{pages.url}{path}", follow_redirects=False, timeout=15)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/accounts/login/?next={path}"
    page = pages.page(None, path)
    expect(page).to_have_url(f"{pages.url}/accounts/login/?next={path}")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_workspace_list_shows_only_the_users_workspaces(pages: Site) -> None:
    page = pages.page("alice", "/workspaces/")
    links = page.locator("main a.nx-ws-link")
    expect(links).to_have_count(1)
    expect(links.first).to_contain_text("acme")
    expect(page.locator("[data-workspace=acme]")).to_contain_text("7 panels")
    expect(page.locator("[data-workspace=acme]")).to_contain_text("owner")
    screenshot(page, "workspaces")
    expect(page.get_by_text("other", exact=True)).to_have_count(0)

    bobs = pages.page("bob", "/workspaces/")
    expect(bobs.locator("main a.nx-ws-link")).to_have_count(1)
    expect(bobs.locator("main a.nx-ws-link").first).to_contain_text("other")
    bobs.locator("main a.nx-ws-link").first.click()
    expect(bobs).to_have_url(f"{pages.url}/workspaces/other/")
    expect(panel_row(bobs, "secret")).to_contain_text("Bob's secret")


def test_non_members_get_not_found(pages: Site) -> None:
    page = pages.page("alice")
    for path in ["/workspaces/other/", "/workspaces/other/panels/secret/", "/workspaces/other/panels/secret/state/",
                 "/workspaces/acme/panels/no-such-panel/", "/workspaces/nowhere/"]:
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.get_by_text("Bob's secret")).to_have_count(0)
    # Bob's own page shows the panel, so the 404 above is about membership, not a broken page.
    bobs = pages.open_panel("secret", user="bob", workspace="other")
    expect(metric(bobs, "n")).to_have_text("7")


def test_workspace_page_lists_panels(pages: Site) -> None:
    page = pages.page("alice", "/workspaces/")
    page.get_by_role("link", name="acme").click()
    expect(page).to_have_url(f"{pages.url}/workspaces/acme/")
    for panel_id, title in [("counter", "Counter"), ("todo", "Tasks"), ("monitor", "Service Monitor"),
                            ("faulty", "Faulty sensor")]:
        row = panel_row(page, panel_id)
        expect(row.get_by_role("link", name=title)).to_have_attribute("href", f"/workspaces/acme/panels/{panel_id}/")
        expect(row.locator(".nx-badge")).to_have_text("running")
        expect(row.locator("time")).to_have_text(RECENT)
        expect(row.locator("time")).to_have_attribute("datetime", _iso_pattern())
    expect(panel_row(page, "broken").locator(".nx-badge")).to_have_text("error")
    expect(panel_row(page, "markup").get_by_role("link", name=MARKUP)).to_be_visible()
    assert page.locator("tr[data-panel-id] img").count() == 0
    expect(page.locator("tbody tr")).to_have_count(7)

    panel_row(page, "counter").get_by_role("link", name="Counter").click()
    expect(page).to_have_url(f"{pages.url}/workspaces/acme/panels/counter/")
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
    screenshot(pages.page("alice", "/workspaces/acme/"), "panel-list")
    screenshot_list = pages.page("alice", "/workspaces/acme/", viewport=PHONE)
    expect(panel_row(screenshot_list, "counter")).to_be_visible()
    screenshot(screenshot_list, "panel-list-phone")


def _iso_pattern() -> Any:
    return re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def test_panel_that_failed_to_start_shows_its_error(pages: Site) -> None:
    page = pages.open_panel("broken")
    expect(page.get_by_role("alert")).to_contain_text("cannot start: disk missing")


# ------------------------------------------------------------- sample panels


def test_counter_click_three_times_shows_three(pages: Site) -> None:
    page = pages.open_panel("counter")
    expect(page.locator(".nx-panel-title")).to_have_text("Counter")
    expect(metric(page, "Count")).to_have_text("0")
    for _ in range(3):
        button(page, "+1").click()
    expect(metric(page, "Count")).to_have_text("3")
    expect(page.get_by_text("Double: 6")).to_be_visible()
    state = pages.live.api("GET", "/api/v1/workspaces/acme/panels/counter/state/").json()
    assert state["state"]["count"] == 3, state
    screenshot(page, "counter")

    page.reload()
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
    expect(metric(page, "Count")).to_have_text("3")


def test_second_page_follows_live(pages: Site) -> None:
    first = pages.open_panel("counter-shared")
    second = pages.open_panel("counter-shared")
    button(first, "+1").click()
    button(first, "+5").click()
    expect(metric(second, "Count")).to_have_text("6")
    button(second, "+1").click()
    expect(metric(first, "Count")).to_have_text("7")
    expect(first.get_by_text("Double: 14")).to_be_visible()
    # A change made through the REST API reaches both pages as well.
    response = pages.live.api("POST", "/api/v1/workspaces/acme/panels/counter-shared/tools/reset/", json={"args": {}})
    assert response.status_code == 200 and response.json()["status"] == "success", response.text
    expect(metric(first, "Count")).to_have_text("0")
    expect(metric(second, "Count")).to_have_text("0")


def test_todo_add_toggle_delete(pages: Site) -> None:
    page = pages.open_panel("todo")
    expect(page.get_by_role("heading", name="Tasks (0)")).to_be_visible()
    field = page.get_by_role("textbox", name="New task...")
    button(page, "Add").click()
    expect(page.locator(".nx-toast")).to_contain_text("Nothing to add")

    for text in ["Buy milk", "Water plants"]:
        field.fill(text)
        button(page, "Add").click()
        expect(page.get_by_role("checkbox", name=text)).not_to_be_checked()
        expect(field).to_have_value("")
    expect(page.get_by_role("heading", name="Tasks (2)")).to_be_visible()

    # Enter in the field runs its tool, as the Add button does.
    field.fill("Call the plumber")
    field.press("Enter")
    expect(page.get_by_role("checkbox", name="Call the plumber")).to_be_visible()
    expect(field).to_have_value("")
    expect(page.get_by_role("heading", name="Tasks (3)")).to_be_visible()
    expect(page.get_by_text("[ ]")).to_have_count(0)

    page.get_by_role("checkbox", name="Water plants").click()
    expect(page.get_by_role("checkbox", name="Water plants")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Buy milk")).not_to_be_checked()
    screenshot(page, "todo")

    page.locator(".nx-layout--row").filter(has_text="Buy milk").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Buy milk")).to_have_count(0)
    expect(page.get_by_role("heading", name="Tasks (2)")).to_be_visible()
    todos = pages.live.api("GET", "/api/v1/workspaces/acme/panels/todo/state/").json()["state"]["todos"]
    assert [(t["text"], t["done"]) for t in todos] == [("Water plants", True), ("Call the plumber", False)]


@pytest.mark.parametrize("panel_id", ["counter", "todo", "monitor"])
def test_sample_panels_fit_a_phone(pages: Site, panel_id: str) -> None:
    page = pages.open_panel(panel_id, viewport=PHONE)
    expect(page.locator(".nx-panel-body .nx-layout").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{panel_id} scrolls sideways on a phone: {width}px"
    for control in page.get_by_role("button").all():
        box = control.bounding_box()
        assert box is not None and box["height"] >= 32 and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, f"{panel_id}-phone")


def test_monitor_shows_its_busy_state_then_the_result(pages: Site) -> None:
    page = pages.open_panel("monitor")
    check = button(page, "Check")
    expect(page.locator(".nx-badge")).to_have_text("unknown")
    expect(page.locator(".nx-chart-empty")).to_be_visible()
    # Loopback answers in milliseconds, so the busy state is recorded as it happens rather than polled.
    page.evaluate(
        """(label) => {
            window.__busySeen = [];
            const target = [...document.querySelectorAll('button')].find(b => b.textContent === label);
            new MutationObserver(() => {
                if (target.getAttribute('aria-busy') === 'true') {
                    window.__busySeen.push({disabled: target.disabled,
                                            spinner: getComputedStyle(target, '::before').animationName});
                }
            }).observe(target, {attributes: true});
        }""",
        "Check",
    )
    check.click()
    # The log line carries the status code /health answered with: the first thing to read on a failure.
    expect(page.locator(".nx-log-line")).to_have_count(1)
    expect(page.locator(".nx-log-line").first).to_contain_text(" 200")
    expect(page.locator(".nx-badge")).to_have_text("online")
    expect(page.locator(".nx-badge")).to_have_class("nx-badge nx-badge--success")
    expect(page.locator(".nx-chart-point")).to_have_count(1)
    expect(check).to_be_enabled()
    expect(check).to_have_attribute("aria-busy", "false")
    busy = page.evaluate("window.__busySeen")
    assert busy and busy[0]["disabled"] is True and busy[0]["spinner"] == "nx-spin", busy

    check.click()
    expect(page.locator(".nx-chart-point")).to_have_count(2)
    expect(page.locator(".nx-log-line")).to_have_count(2)
    screenshot(page, "monitor")
    button(page, "Clear").click()
    expect(page.locator(".nx-log-line")).to_have_count(0)


# ------------------------------------------------------------ safety, errors


def test_markup_in_state_is_text_and_runs_nothing(pages: Site) -> None:
    page = pages.open_panel("markup")
    expect(page.locator(".nx-panel-title")).to_have_text(MARKUP)
    expect(page.locator(".nx-text").first).to_have_text(MARKUP)
    expect(page.locator(".nx-metric-value")).to_have_text(MARKUP)
    expect(page.locator(".nx-badge")).to_have_text(MARKUP)
    expect(page.get_by_role("textbox")).to_have_value(MARKUP)
    button(page, "Inject").click()
    injected = '<script>window.__pwned=2</script><b>bold</b>'
    expect(page.locator(".nx-text").first).to_have_text(injected)
    expect(page.locator(".nx-log-line")).to_have_text([injected])
    page.wait_for_timeout(300)
    assert page.locator("img").count() == 0
    assert page.locator("#nexus-panel-root script, #nexus-panel-root b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert MARKUP in page.title()


def test_handler_error_appears_as_a_message(pages: Site) -> None:
    page = pages.open_panel("faulty")
    read = button(page, "Read sensor")
    read.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("sensor unplugged after 1 reads")
    expect(alert).to_contain_text('"read" failed')
    expect(read).to_be_enabled()
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
    screenshot(page, "handler-error")
    alert.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_role("alert")).to_have_count(0)
