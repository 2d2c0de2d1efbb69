"""Client controls and charts in Chromium against the fake protocol server: Enter in an Input runs
its tool with its args, a Checkbox sets its boolean, bar charts of whole counts have whole ticks,
equal toasts collapse, and a stopped panel's tools stay off."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.client.conftest import PanelPages
from tests.client.fake_backend import PANEL_KINDS, FakeProtocolServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ServerFactory = Callable[..., FakeProtocolServer]


def node(type_: str, children: list[dict[str, Any]] | None = None, **props: str) -> dict[str, Any]:
    return {"type": type_, "props": props, "children": children or []}


def stack(*children: dict[str, Any]) -> dict[str, Any]:
    return node("Layout", list(children), strategy="stack", gap="md")


def test_enter_in_an_input_sets_its_value_then_runs_its_tool_with_args(
    panels: PanelPages, panel_server: ServerFactory
) -> None:
    server = panel_server("counter")
    view = stack(node("Metric", id="count", label="Count", value="{$state.count}"),
                 node("Input", bind="$state.count", inputType="number", placeholder="Start at",
                      trigger="increment", args="{ {by: $state.count} }"))
    page = panels.open("counter", server, panel_changes={"view": view})
    field = page.get_by_role("spinbutton", name="Start at")
    field.fill("4")
    field.press("Enter")
    expect(page.locator("[data-nx-id='count'] .nx-metric-value")).to_have_text("8")
    assert server.wait_frames("SET", 1)[0]["value"] == 4
    (trigger,) = server.wait_frames("TRIGGER", 1)
    assert (trigger["tool"], trigger["args"]) == ("increment", {"by": 4})


def test_checkbox_sets_its_bound_boolean(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("gallery")
    view = stack(node("Checkbox", bind="$state.enabled", label="Enabled"),
                 node("Text", content="{$state.enabled ? 'on' : 'off'}"))
    page = panels.open("gallery", server, panel_changes={"view": view})
    box = page.get_by_role("checkbox", name="Enabled")
    expect(box).not_to_be_checked()
    box.click()
    expect(page.get_by_text("on", exact=True)).to_be_visible()
    expect(box).to_be_checked()
    sent = server.wait_frames("SET", 1)[0]
    assert (sent["key"], sent["value"]) == ("enabled", True)


def test_bar_chart_of_whole_counts_has_whole_ticks(panels: PanelPages, panel_server: ServerFactory) -> None:
    state = copy.deepcopy(PANEL_KINDS["gallery"].initial_state)
    state["bars"] = [{"name": "GET", "count": 1}, {"name": "POST", "count": 2}, {"name": "PUT", "count": 0}]
    server = panel_server("gallery", state=state)
    view = stack(node("Chart", type="bar", data="{$state.bars}", xKey="name", yKey="count", height="200"))
    page = panels.open("gallery", server, panel_changes={"view": view})
    ticks = page.locator(".nx-chart svg text[text-anchor='end']")
    expect(ticks.first).to_be_visible()
    labels = ticks.all_text_contents()
    assert labels and all(re.fullmatch(r"-?\d+", label) for label in labels), labels
    assert labels[0] == "0" and labels[-1] == "2", labels


def test_equal_toasts_collapse_into_one_with_a_count(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server)
    for _ in range(3):
        server.send({"type": "EVENT", "name": "toast", "payload": {"type": "warn", "message": "Slow down"}})
    server.send({"type": "EVENT", "name": "toast", "payload": {"type": "info", "message": "Other"}})
    expect(page.locator(".nx-toast")).to_have_count(2)
    slow = page.locator(".nx-toast", has_text="Slow down")
    expect(slow.locator(".nx-toast-count")).to_have_text("×3")
    expect(page.locator(".nx-toast", has_text="Other").locator(".nx-toast-count")).to_be_hidden()


def test_stopped_panel_keeps_its_tools_off_until_it_runs(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, panel_changes={"status": "stopped"})
    expect(page.locator(".nx-conn-text")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="+1", exact=True)).to_be_disabled()
    expect(page.locator(".nx-lifecycle")).to_contain_text("stopped")
    # No controls in the page's data: no Start button.
    expect(page.get_by_role("button", name="Start")).to_be_hidden()
    server.send({"type": "STATUS", "status": "running"})
    expect(page.locator(".nx-conn-text")).to_have_text("Live")
    expect(page.get_by_role("button", name="+1", exact=True)).to_be_enabled()
