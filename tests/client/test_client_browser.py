"""The panel client in Debian's Chromium against a fake protocol server (no Django needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.client.conftest import PanelPages
from tests.client.fake_backend import FakeProtocolServer
from tests.client.support import ARTIFACTS_DIR

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ServerFactory = Callable[..., FakeProtocolServer]
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=2</script>"
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws://127.0.0.1:*; "
    "img-src 'none'; base-uri 'none'; form-action 'none'"
)


def metric(page: Page, component_id: str) -> Any:
    return page.locator(f"[data-nx-id='{component_id}'] .nx-metric-value")


def button(page: Page, label: str) -> Any:
    return page.get_by_role("button", name=label, exact=True)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"panel-{name}.png"), full_page=True)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# ------------------------------------------------------------------- counter


def test_counter_click_three_times_shows_three(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, csp=STRICT_CSP)
    expect(page.locator(".nx-panel-title")).to_have_text("Counter")
    expect(metric(page, "count")).to_have_text("0")
    expect(page.get_by_text("Double: 0")).to_be_visible()
    for _ in range(3):
        button(page, "+1").click()
    expect(metric(page, "count")).to_have_text("3")
    expect(page.get_by_text("Double: 6")).to_be_visible()
    triggers = server.wait_frames("TRIGGER", 3)
    assert [t["tool"] for t in triggers] == ["increment"] * 3
    assert all(t["args"] == {} and isinstance(t["requestId"], str) and "scope" not in t for t in triggers)
    assert len({t["requestId"] for t in triggers}) == 3

    button(page, "+5").click()
    expect(metric(page, "count")).to_have_text("8")
    assert server.wait_frames("TRIGGER", 4)[-1]["args"] == {"by": 5}
    button(page, "Reset").click()
    expect(metric(page, "count")).to_have_text("0")
    screenshot(page, "counter")
    assert not [e for e in panels.console_errors if "Refused" in e or "EvalError" in e], panels.console_errors


def test_second_page_follows_live(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    first = panels.open("counter", server)
    second = panels.open("counter", server)
    button(first, "+1").click()
    button(first, "+5").click()
    expect(metric(second, "count")).to_have_text("6")
    button(second, "Reset").click()
    expect(metric(first, "count")).to_have_text("0")


def test_button_is_disabled_while_its_request_runs(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    server.hold("increment")
    plus_one = button(page, "+1")
    plus_one.click()
    expect(plus_one).to_be_disabled()
    expect(plus_one).to_have_attribute("aria-busy", "true")
    expect(button(page, "+5")).to_be_enabled()
    server.release("increment")
    expect(plus_one).to_be_enabled()
    expect(plus_one).to_have_attribute("aria-busy", "false")
    expect(metric(page, "count")).to_have_text("1")


def test_keyboard_only_use(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "+1"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "keyboard focus must be visible"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(metric(page, "count")).to_have_text("6")


# ---------------------------------------------------------------------- todo


def test_todo_add_toggle_delete(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("todo")
    page = panels.open("todo", server)
    expect(page.get_by_role("heading", name="Tasks (0)")).to_be_visible()
    field = page.get_by_role("textbox", name="New task...")
    field.fill("Buy milk")
    button(page, "Add").click()
    expect(page.get_by_text("[ ] Buy milk")).to_be_visible()
    expect(page.get_by_role("heading", name="Tasks (1)")).to_be_visible()
    expect(field).to_have_value("")
    sets = server.wait_frames("SET")
    assert sets[0]["key"] == "input" and sets[0]["value"] == "Buy milk" and sets[0]["requestId"]
    received = [f["type"] for f in server.frames() if f["type"] in ("SET", "TRIGGER")]
    assert received[:2] == ["SET", "TRIGGER"], "the typed text must reach the server before the trigger"

    field.fill("Walk the dog")
    field.press("Enter")
    wait_until(lambda: [f["value"] for f in server.frames("SET")] == ["Buy milk", "Walk the dog"])
    button(page, "Add").click()
    expect(page.get_by_text("[ ] Walk the dog")).to_be_visible()

    row = page.locator(".nx-iterate-item", has_text="Buy milk")
    row.get_by_role("button", name="Toggle").click()
    expect(page.get_by_text("[x] Buy milk")).to_be_visible()
    toggle = server.wait_frames("TRIGGER", 3)[-1]
    assert toggle["tool"] == "toggle" and toggle["args"] == {"id": 1}
    assert toggle["scope"] == {"todo": {"id": 1, "text": "Buy milk", "done": False}}
    screenshot(page, "todo")

    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Buy milk")).to_have_count(0)
    expect(page.get_by_text("[ ] Walk the dog")).to_be_visible()
    expect(page.get_by_role("heading", name="Tasks (1)")).to_be_visible()
    assert server.wait_frames("TRIGGER", 4)[-1]["args"] == {"id": 1}


def test_keyed_iterate_keeps_rows_and_focus(panels: PanelPages, panel_server: ServerFactory) -> None:
    todos = [{"id": i, "text": f"task {i}", "done": False} for i in (1, 2, 3)]
    server = panel_server("todo", state={"todos": todos, "input": "", "nextId": 4})
    page = panels.open("todo", server)
    page.locator(".nx-iterate-item", has_text="task 3").get_by_role("button", name="Toggle").focus()
    page.evaluate("document.activeElement.dataset.marker = 'kept'")
    server.patch({"todos": [{"id": 0, "text": "task 0", "done": False}, *todos[::-1]]})
    expect(page.locator(".nx-iterate-item").first).to_contain_text("task 0")
    assert page.evaluate("document.activeElement.dataset.marker") == "kept"
    texts = page.locator(".nx-iterate-item .nx-text").all_text_contents()
    assert texts == ["[ ] task 0", "[ ] task 3", "[ ] task 2", "[ ] task 1"]


def test_input_keeps_what_the_user_is_typing(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("todo")
    page = panels.open("todo", server)
    field = page.get_by_role("textbox", name="New task...")
    field.click()
    page.keyboard.type("half typ")
    server.patch({"todos": [{"id": 9, "text": "from elsewhere", "done": False}]})
    expect(page.get_by_text("[ ] from elsewhere")).to_be_visible()
    expect(field).to_have_value("half typ")
    expect(field).to_be_focused()


def test_toast_event_is_shown(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("todo")
    page = panels.open("todo", server)
    button(page, "Add").click()
    toast = page.locator(".nx-toast")
    expect(toast).to_contain_text("Nothing to add")
    expect(toast).to_have_class("nx-toast nx-toast--warn")
    server.send({"type": "EVENT", "name": "toast", "payload": {"type": "success", "message": "Saved"}})
    expect(page.locator(".nx-toast--success")).to_have_text("Saved×")
    server.send({"type": "EVENT", "name": "changed", "payload": 3})
    page.locator(".nx-toast--success .nx-dismiss").click()
    expect(page.locator(".nx-toast--success")).to_have_count(0)


# ------------------------------------------------------------------ security


def test_markup_in_state_is_shown_as_text(panels: PanelPages, panel_server: ServerFactory) -> None:
    todos = [
        {"id": 1, "text": XSS_IMG, "done": False},
        {"id": 2, "text": XSS_SCRIPT, "done": True},
    ]
    server = panel_server("todo", state={"todos": todos, "input": XSS_IMG, "nextId": 3})
    page = panels.open("todo", server, panel_changes={"title": "Tasks " + XSS_IMG})
    expect(page.get_by_text("[ ] " + XSS_IMG, exact=True)).to_be_visible()
    expect(page.get_by_text("[x] " + XSS_SCRIPT, exact=True)).to_be_visible()
    expect(page.locator(".nx-panel-title")).to_have_text("Tasks " + XSS_IMG)
    expect(page.get_by_role("textbox", name="New task...")).to_have_value(XSS_IMG)

    server.patch({"todos": [*todos, {"id": 3, "text": "<b onmouseover=alert(1)>bold</b>", "done": False}]})
    expect(page.get_by_text("[ ] <b onmouseover=alert(1)>bold</b>")).to_be_visible()
    server.send({"type": "EVENT", "name": "toast", "payload": {"type": "error", "message": XSS_IMG}})
    expect(page.locator(".nx-toast")).to_contain_text(XSS_IMG)
    server.fail_next = XSS_SCRIPT
    button(page, "Add").click()
    expect(page.locator(".nx-alert")).to_contain_text(XSS_SCRIPT)

    root = page.locator("#nexus-panel-root")
    assert root.locator("img").count() == 0
    assert root.locator("script").count() == 0
    assert root.locator("b").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None


# -------------------------------------------------------------------- errors


def test_handler_error_is_shown(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    server.fail_next = "Counter overflow: too big"
    button(page, "+1").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Counter overflow: too big")
    expect(alert).to_contain_text('"increment" failed')
    expect(button(page, "+1")).to_be_enabled()
    expect(metric(page, "count")).to_have_text("0")
    screenshot(page, "counter-error")
    alert.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_role("alert")).to_have_count(0)


def test_error_frames_are_shown(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    server.send({"type": "ERROR", "code": "RUNTIME_BUSY", "message": "The runtime is busy"})
    expect(page.get_by_role("alert")).to_contain_text("RUNTIME_BUSY: The runtime is busy")
    server.error_frame_next = {"code": "INVALID_ARGS", "message": "by must be a number"}
    plus_five = button(page, "+5")
    plus_five.click()
    expect(page.locator(".nx-alert").last).to_contain_text("by must be a number")
    expect(plus_five).to_be_enabled()


def test_failed_tool_in_the_todo_panel(panels: PanelPages, panel_server: ServerFactory) -> None:
    todos = [{"id": 5, "text": "ghost", "done": False}]
    server = panel_server("todo", state={"todos": [], "input": "", "nextId": 6})
    # The page believes a todo exists that the server does not know: toggling it fails.
    server_state = server.snapshot()
    page = panels.open("todo", server, wait_live=False)
    server.send({"type": "PATCH", "mutations": [{"key": "todos", "value": todos, "operation": "set"}],
                 "stateVersion": server_state["stateVersion"] + 1, "timestamp": 0})
    expect(page.get_by_text("[ ] ghost")).to_be_visible()
    page.get_by_role("button", name="Toggle").click()
    expect(page.get_by_role("alert")).to_contain_text("No todo 5")


# ------------------------------------------------------------------- monitor


def test_monitor_shows_busy_state_then_result(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("monitor")
    page = panels.open("monitor", server)
    badge = page.locator(".nx-badge")
    expect(badge).to_have_text("unknown")
    expect(badge).to_have_class("nx-badge nx-badge--error")
    expect(page.locator(".nx-chart-empty")).to_be_visible()
    server.hold("checkHealth.result")
    check = button(page, "Check")
    check.click()
    expect(check).to_have_attribute("aria-busy", "true")
    expect(check).to_have_class("nx-button nx-button--primary nx-button--busy")
    wait_until(lambda: server.snapshot()["state"]["loading"] is True)
    expect(check).to_be_disabled()
    screenshot(page, "monitor-busy")
    server.release("checkHealth.result")
    expect(badge).to_have_text("online")
    expect(badge).to_have_class("nx-badge nx-badge--success")
    expect(check).to_be_enabled()
    expect(page.locator(".nx-log-line")).to_have_count(1)
    check.click()
    expect(page.locator(".nx-log-line")).to_have_count(2)
    expect(page.locator(".nx-chart-point")).to_have_count(2)
    expect(page.locator("path.nx-chart-line")).to_have_count(1)
    screenshot(page, "monitor")
    button(page, "Clear").click()
    expect(page.locator(".nx-log-line")).to_have_count(0)
    expect(page.locator(".nx-log-empty")).to_be_visible()


# ------------------------------------------------------------------- gallery


def test_gallery_renders_every_component(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("gallery")
    page = panels.open("gallery", server, csp=STRICT_CSP)
    expect(page.locator("h2.nx-text--h2")).to_have_text("Component gallery")
    requests = page.locator("[data-nx-id='requests']")
    expect(requests.locator(".nx-metric-value")).to_have_text("1250")
    expect(requests.locator(".nx-metric-unit")).to_have_text("req/s")
    expect(requests.locator(".nx-metric-trend")).to_have_class("nx-metric-trend nx-trend--up")
    expect(page.locator(".nx-metric-value").nth(2)).to_have_text("416.6666667")
    for status in ("success", "warn", "error", "info"):
        expect(page.locator(f".nx-badge--{status}").first).to_be_visible()
    expect(page.locator(".nx-badge--info").first).to_have_text("maintenance")
    expect(page.locator(".nx-container--card .nx-container-title")).to_have_text("Badges")
    expect(page.locator(".nx-container--panel")).to_have_count(1)
    expect(page.locator(".nx-container--section")).to_have_count(1)
    expect(page.locator(".nx-container--transparent")).to_have_count(1)
    expect(page.locator("pre.nx-text--code")).to_have_text("const x = 1;\nreturn x + 1;")
    expect(button(page, "Disabled")).to_be_disabled()
    expect(page.get_by_text("The feature is off.")).to_be_visible()
    expect(page.locator(".nx-log-line")).to_have_count(4)
    expect(page.locator(".nx-log")).to_have_css("height", "120px")
    expect(page.locator("path.nx-chart-line")).to_have_count(2)
    expect(page.locator("path.nx-chart-area")).to_have_count(1)
    expect(page.locator("rect.nx-chart-bar")).to_have_count(3)
    expect(page.locator(".nx-chart-slice").filter(has=page.locator("title"))).to_have_count(3)
    expect(page.locator(".nx-chart-legend-item")).to_have_count(3)
    expect(page.locator("svg.nx-chart-svg").first).to_have_attribute("role", "img")

    switch = page.get_by_role("switch", name="Enabled")
    switch.check()
    expect(page.get_by_text("Hello Ada, the feature is on.")).to_be_visible()
    name = page.get_by_role("textbox", name="Your name")
    name.fill("Grace")
    name.press("Enter")
    expect(page.get_by_text("Hello Grace, the feature is on.")).to_be_visible()
    limit = page.get_by_role("spinbutton", name="Limit")
    limit.fill("12")
    limit.press("Enter")
    expect(button(page, "Limit 12")).to_be_visible()
    sets = {f["key"]: f["value"] for f in server.frames("SET")}
    assert sets == {"enabled": True, "name": "Grace", "limit": 12}

    button(page, "Limit 12").click()
    trigger = server.wait_frames("TRIGGER")[-1]
    assert trigger["tool"] == "noop"
    assert trigger["args"] == {"limit": 12, "tags": ["a", "b"], "nested": {"on": True}}

    button(page, "Restart worker").click()
    trigger = server.wait_frames("TRIGGER", 2)[-1]
    assert trigger["args"] == {"name": "worker"}
    assert trigger["scope"] == {"svc": {"name": "worker", "ok": False, "ms": 250}}
    expect(page.locator(".nx-toast--success")).to_contain_text("Restarted worker")
    screenshot(page, "gallery")
    assert not [e for e in panels.console_errors if "Refused" in e or "EvalError" in e], panels.console_errors


def test_gallery_on_a_phone(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("gallery")
    page = panels.open("gallery", server, viewport={"width": 375, "height": 800})
    expect(page.locator("rect.nx-chart-bar")).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"page scrolls sideways on a phone: {width}px"
    box = button(page, "Primary").bounding_box()
    assert box is not None and box["height"] >= 36, "touch targets must stay usable"
    screenshot(page, "gallery-phone")


def test_view_commands(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("gallery")
    page = panels.open("gallery", server)
    lines = page.locator(".nx-log-line")
    server.send({"type": "VIEW", "command": {"type": "setFilter", "target": "log", "value": "error"}})
    expect(lines.filter(visible=True)).to_have_count(2)
    server.send({"type": "VIEW", "command": {"type": "setFilter", "componentId": "log", "args": [""]}})
    expect(lines.filter(visible=True)).to_have_count(4)

    items = page.locator("[data-nx-id='services'] .nx-iterate-item")
    server.send({"type": "VIEW", "command": {"type": "setFilter", "target": "services", "value": "WORK"}})
    expect(items.filter(visible=True)).to_have_count(1)
    expect(button(page, "Restart worker")).to_be_visible()
    expect(button(page, "Restart api")).to_be_hidden()
    server.patch({"services": [{"name": "worker-2", "ok": True, "ms": 1}, {"name": "api", "ok": True, "ms": 2}]})
    expect(button(page, "Restart worker-2")).to_be_visible()
    expect(button(page, "Restart api")).to_be_hidden()

    server.send({"type": "VIEW", "command": {"type": "focus", "target": "name"}})
    expect(page.get_by_role("textbox", name="Your name")).to_be_focused()
    server.send({"type": "VIEW", "command": {"type": "focus", "target": "requests"}})
    expect(page.locator("[data-nx-id='requests']")).to_be_focused()

    server.patch({"logs": [f"line {i}" for i in range(60)]})
    expect(lines).to_have_count(60)
    log = page.locator(".nx-log")
    assert log.evaluate("el => el.scrollTop") > 0, "the log follows new lines"
    server.send({"type": "VIEW", "command": {"type": "scrollTo", "target": "log", "value": "top"}})
    wait_until(lambda: log.evaluate("el => el.scrollTop") == 0)
    server.send({"type": "VIEW", "command": {"type": "scrollTo", "target": "heading"}})
    server.send({"type": "VIEW", "command": {"type": "explode", "target": "nobody"}})
    server.send({"type": "VIEW", "command": "not an object"})
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")


# ------------------------------------------------------- state and connection


def test_patches_apply_in_version_order_and_gaps_resync(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    version = server.snapshot()["stateVersion"]
    server.send({"type": "PATCH", "mutations": [{"key": "count", "value": 77, "operation": "set"}],
                 "stateVersion": version, "timestamp": 0})
    server.patch({"count": 5})
    expect(metric(page, "count")).to_have_text("5")
    assert page.evaluate("NexusPanel.active.state.count") == 5

    # A change the page never hears about, then the next PATCH: the page sees the gap.
    server.change_silently({"double": 99})
    server.patch({"count": 6})
    expect(page.get_by_text("Double: 99")).to_be_visible()
    expect(metric(page, "count")).to_have_text("6")
    assert panels.site.pages[panels.names[-1]].state_requests == 1
    assert page.evaluate("NexusPanel.active.stateVersion") == server.snapshot()["stateVersion"]

    server.send({"type": "PATCH", "mutations": [{"key": "double", "operation": "delete"}],
                 "stateVersion": server.snapshot()["stateVersion"] + 1, "timestamp": 0})
    expect(page.locator(".nx-text--caption")).to_have_text("Double: ")


def test_reconnects_and_resyncs_after_the_socket_drops(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, options={"reconnectBaseMs": 1500})
    button(page, "+1").click()
    expect(metric(page, "count")).to_have_text("1")
    server.change_silently({"count": 42, "double": 84})
    server.drop()
    indicator = page.locator(".nx-conn")
    expect(indicator).to_have_attribute("data-state", "reconnecting")
    expect(indicator).to_contain_text("Reconnecting")
    expect(button(page, "+1")).to_be_disabled()
    expect(indicator).to_have_attribute("data-state", "live", timeout=10_000)
    expect(metric(page, "count")).to_have_text("42")
    assert server.connections_total == 2
    button(page, "+1").click()
    expect(metric(page, "count")).to_have_text("43")

    server.close_all(1001, "server shutting down")
    expect(indicator).to_have_attribute("data-state", "live", timeout=10_000)
    wait_until(lambda: server.connections_total == 3)


def test_refused_connection_goes_offline_without_retrying(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    server.close_code_on_connect = 4403
    page = panels.open("counter", server, wait_live=False)
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "offline")
    expect(page.get_by_role("alert")).to_contain_text("do not have access")
    page.wait_for_timeout(1000)
    assert server.connections_total == 1
    expect(button(page, "+1")).to_be_disabled()
    server.close_code_on_connect = None
    page.get_by_role("button", name="Retry now").click()
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")


def test_loading_state_before_connected(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    server.hold_connected()
    page = panels.open("counter", server, with_state=False, wait_live=False)
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "connecting")
    expect(page.locator(".nx-panel")).to_have_attribute("aria-busy", "true")
    expect(page.locator(".nx-loading")).to_contain_text("Loading panel")
    server.release_connected()
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
    expect(page.locator(".nx-panel")).to_have_attribute("aria-busy", "false")
    expect(page.locator(".nx-loading")).to_have_count(0)
    expect(metric(page, "count")).to_have_text("0")

    with_state = panel_server("counter", state={"count": 11})
    with_state.hold_connected()
    early = panels.open("counter", with_state, wait_live=False)
    expect(metric(early, "count")).to_have_text("11")
    expect(button(early, "+1")).to_be_disabled()
    with_state.release_connected()
    expect(button(early, "+1")).to_be_enabled()


def test_ping_is_answered_with_pong(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    panels.open("counter", server)
    server.send({"type": "PING"})
    server.wait_frames("PONG")
    server.send({"type": "NONSENSE"})
    server.send({"type": "PING"})
    server.wait_frames("PONG", 2)


def test_reconnect_backs_off_exponentially(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    server.close_code_on_connect = 1011
    page = panels.open("counter", server, wait_live=False,
                       options={"reconnectBaseMs": 200, "reconnectMaxMs": 5000, "offlineAfterAttempts": 3})
    wait_until(lambda: server.connections_total >= 5, timeout=15)
    times = server.connection_times[:5]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    # Attempt n waits between half and all of 200ms * 2**(n-1): the fourth wait beats the first.
    assert gaps[0] < 0.5 and gaps[3] >= 0.8, gaps
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "offline")
    expect(page.locator(".nx-conn")).to_contain_text("retry in")
    server.close_code_on_connect = None
    page.get_by_role("button", name="Retry now").click()
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")


def test_client_sent_away_or_dropped_by_redis_comes_back_to_the_current_state(
    panels: PanelPages, panel_server: ServerFactory
) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, options={"reconnectBaseMs": 200, "reconnectMaxMs": 5000})
    button(page, "+1").click()
    expect(metric(page, "count")).to_have_text("1")
    server.change_silently({"count": 42, "double": 84})  # committed while the client was away
    server.send_away_on_connect = 3  # the next tries land on servers that are draining too
    server.send_away(1000)
    indicator = page.locator(".nx-conn")
    expect(indicator).to_have_attribute("data-state", "live", timeout=15_000)
    expect(metric(page, "count")).to_have_text("42")
    expect(page.get_by_role("alert")).to_have_count(0)  # being sent away is not an error
    assert server.connections_total == 5
    first_wait = server.connection_times[1] - server.sent_away_at
    gaps = [later - earlier for earlier, later in pairwise(server.connection_times[1:])]
    # The hint (1000 ms, of which half to all) sets the first wait; then 200 ms * 2**(n-1), jittered.
    assert first_wait >= 0.45 and gaps[2] >= 0.8 and gaps[0] < gaps[2], (first_wait, gaps)
    button(page, "+1").click()
    expect(metric(page, "count")).to_have_text("43")

    server.change_silently({"count": 50, "double": 100})
    server.close_all(1011, "channel layer failed")  # what a Redis restart does to every socket
    expect(metric(page, "count")).to_have_text("50", timeout=15_000)
    expect(indicator).to_have_attribute("data-state", "live")


def test_silent_server_is_detected_by_the_heartbeat(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, options={"heartbeatMs": 250})
    server.wait_frames("PING", timeout=5)
    assert server.connections_total == 1, "a server that answers PING keeps the connection"
    server.silent = True
    wait_until(lambda: server.connections_total >= 2, timeout=10)
    server.silent = False
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
