"""Fixtures for the browser client tests: Debian's Chromium, a harness site, fake panel servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.fake_backend import FakeProtocolServer, HarnessSite
from tests.client.support import STATIC_DIR, load_fixture_panel

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Quick reconnects keep the tests short; production defaults live in panel.js.
TEST_OPTIONS = {"reconnectBaseMs": 200, "reconnectMaxMs": 2000, "heartbeatMs": 0, "toastMs": 4000}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    message = "Debian's Chromium is missing: apt-get update && apt-get install -y chromium"
    if os.environ.get("NEXUS_REQUIRE_BROWSER") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def harness_site() -> Iterator[HarnessSite]:
    site = HarnessSite(STATIC_DIR).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def panel_server() -> Iterator[Callable[..., FakeProtocolServer]]:
    started: list[FakeProtocolServer] = []

    def start(kind: str, state: dict[str, Any] | None = None, version: int = 1) -> FakeProtocolServer:
        server = FakeProtocolServer(kind, state=state, version=version).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class PanelPages:
    """Opens harness pages in fresh browser contexts and checks them for script errors."""

    def __init__(self, browser: Any, site: HarnessSite) -> None:
        self.browser = browser
        self.site = site
        self.contexts: list[Any] = []
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.names: list[str] = []

    def config(self, fixture: str, server: FakeProtocolServer, page_name: str, *, with_state: bool = True,
               options: dict[str, Any] | None = None, panel_changes: dict[str, Any] | None = None) -> dict[str, Any]:
        panel = load_fixture_panel(fixture)
        if with_state:
            snapshot = server.snapshot()
            panel["state"] = snapshot["state"]
            panel["stateVersion"] = snapshot["stateVersion"]
        panel.update(panel_changes or {})
        return {
            "panel": panel,
            "wsUrl": server.url,
            "stateUrl": f"/state/{page_name}",
            "options": {**TEST_OPTIONS, **(options or {})},
        }

    def open(self, fixture: str, server: FakeProtocolServer, *, with_state: bool = True,
             options: dict[str, Any] | None = None, csp: str | None = None, viewport: dict[str, int] | None = None,
             panel_changes: dict[str, Any] | None = None, wait_live: bool = True) -> Any:
        name = f"{fixture}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        config = self.config(fixture, server, name, with_state=with_state, options=options,
                             panel_changes=panel_changes)
        url = self.site.add_page(name, config, csp=csp, state=server.snapshot)
        context = self.browser.new_context(viewport=viewport or {"width": 1000, "height": 900})
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url)
        if wait_live:
            page.wait_for_selector(".nx-conn[data-state=live]", timeout=10_000)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def panels(browser: Any, harness_site: HarnessSite) -> Iterator[PanelPages]:
    pages = PanelPages(browser, harness_site)
    try:
        yield pages
    finally:
        pages.close()
    assert pages.page_errors == [], f"uncaught errors in the page: {pages.page_errors}"
