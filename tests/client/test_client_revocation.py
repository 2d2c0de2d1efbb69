"""The client when the server ends a live socket for access reasons (4401 token expiry, 4403 revocation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.client.conftest import PanelPages
from tests.client.fake_backend import FakeProtocolServer
from tests.client.test_client_browser import button, metric, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ServerFactory = Callable[..., FakeProtocolServer]
# Slow backoff: a reconnect seen quickly is the immediate re-check, not an ordinary retry.
SLOW_RETRY = {"reconnectBaseMs": 60_000, "reconnectMaxMs": 60_000}


@pytest.mark.parametrize("code", [4401, 4403])
def test_a_live_socket_closed_for_access_reconnects_at_once(
    panels: PanelPages, panel_server: ServerFactory, code: int
) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, options=SLOW_RETRY)
    server.change_silently({"count": 7, "double": 14})
    server.close_all(code, "access changed")
    wait_until(lambda: server.connections_total == 2)
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
    expect(metric(page, "count")).to_have_text("7")
    expect(button(page, "+1")).to_be_enabled()


def test_a_revoked_member_goes_offline_after_one_check(panels: PanelPages, panel_server: ServerFactory) -> None:
    server = panel_server("counter")
    page = panels.open("counter", server, options=SLOW_RETRY)
    server.close_code_on_connect = 4403  # the re-check is refused too: access really ended
    server.close_all(4403, "removed from the workspace")
    expect(page.locator(".nx-conn")).to_have_attribute("data-state", "offline")
    expect(page.get_by_role("alert")).to_contain_text("do not have access")
    page.wait_for_timeout(1500)
    assert server.connections_total == 2  # the live socket and one refused re-check, no loop
    expect(button(page, "+1")).to_be_disabled()


def test_every_later_revocation_gets_its_own_check(panels: PanelPages, panel_server: ServerFactory) -> None:
    """A re-check that went live re-arms it: a second downgrade later reconnects again."""
    server = panel_server("counter")
    page = panels.open("counter", server, options=SLOW_RETRY)
    for expected in (2, 3):
        server.close_all(4403, "role changed")
        wait_until(lambda expected=expected: server.connections_total == expected)
        expect(page.locator(".nx-conn")).to_have_attribute("data-state", "live")
