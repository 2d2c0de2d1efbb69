"""A real Nexus server and Debian's Chromium: the Django pages driven end to end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import browser, chromium_path
from tests.integration.conftest import Live, example, start_live
from tests.support.servers import scratch_database

__all__ = ["browser", "chromium_path"]  # fixtures shared with the client tests

PASSWORD = "bench-password"
WAIT_MS = 15_000
ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"

# A handler's string literal lives in XML here, so markup characters are written as entities.
MARKUP = '<img src=x onerror="window.__pwned=1">'
MARKUP_XML = "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;"
SCRIPT_XML = "&lt;script&gt;window.__pwned=2&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"

MARKUP_PANEL = f"""<NexusPanel id="markup" title="{MARKUP_XML}">
  <Data>
    <State name="html" type="string" default="{MARKUP_XML}" />
    <State name="lines" type="list" default="[]" />
  </Data>
  <Logic>
    <Tool name="inject" description="Store more markup">
      <Handler>
        $state.html = '{SCRIPT_XML}';
        $state.lines.push($state.html);
      </Handler>
    </Tool>
  </Logic>
  <View>
    <Layout strategy="stack" gap="md">
      <Text id="as-text" content="{{$state.html}}" />
      <Metric label="{{$state.html}}" value="{{$state.html}}" />
      <StatusBadge label="{{$state.html}}" status="info" />
      <LogStream data="{{$state.lines}}" height="80" />
      <Input bind="$state.html" placeholder="{{$state.html}}" />
      <Button label="Inject" trigger="inject" />
    </Layout>
  </View>
</NexusPanel>"""

FAULTY_PANEL = """<NexusPanel id="faulty" title="Faulty sensor">
  <Data><State name="reads" type="number" default="0" /></Data>
  <Logic>
    <Tool name="read" description="Read the sensor">
      <Handler>$state.reads = $state.reads + 1; throw new Error('sensor unplugged after ' + $state.reads + ' reads');</Handler>
    </Tool>
  </Logic>
  <View>
    <Layout strategy="stack" gap="md">
      <Metric label="Reads" value="{$state.reads}" />
      <Button label="Read sensor" trigger="read" variant="danger" />
    </Layout>
  </View>
</NexusPanel>"""

BROKEN_MOUNT_PANEL = """<NexusPanel id="broken" title="Broken on start">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic><Lifecycle on="mount"><Handler>throw new Error('cannot start: disk missing');</Handler></Lifecycle></Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""

PRIVATE_PANEL = """<NexusPanel id="secret" title="Bob's secret">
  <Data><State name="n" type="number" default="7" /></Data>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


@dataclass
class Site:
    """The live server of one test module, with a browser and the logged-in sessions of its users."""

    live: Live
    browser: Any
    sessions: dict[str, Any] = field(default_factory=dict)
    contexts: list[Any] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.live.server.url

    def context(self, user: str | None = None, viewport: dict[str, int] | None = None) -> Any:
        """A fresh browser context, signed in as ``user`` (through the login page) or anonymous."""
        storage = self.sessions.get(user) if user else None
        if user and storage is None:
            storage = self.sessions[user] = self.log_in(user)
        context = self.browser.new_context(
            base_url=self.url, storage_state=storage, viewport=viewport or {"width": 1000, "height": 900}
        )
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        return context

    def page(self, user: str | None = "alice", path: str | None = None, **context_options: Any) -> Any:
        page = self.context(user, **context_options).new_page()
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))
        if path:
            page.goto(path)
        return page

    def log_in(self, user: str) -> Any:
        context = self.browser.new_context(base_url=self.url)
        context.set_default_timeout(WAIT_MS)
        try:
            page = context.new_page()
            page.goto("/accounts/login/")
            page.get_by_label("Username").fill(user)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/workspaces/")
            return context.storage_state()
        finally:
            context.close()

    def open_panel(self, panel_id: str, user: str = "alice", workspace: str = "acme", **options: Any) -> Any:
        page = self.page(user, f"/workspaces/{workspace}/panels/{panel_id}/", **options)
        page.wait_for_selector(".nx-conn[data-state=live]")
        return page

    def create(self, panel_id: str, source: str, **body: Any) -> dict[str, Any]:
        response = self.live.api("POST", "/api/v1/workspaces/acme/panels/", json={"id": panel_id, "source": source, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def close_contexts(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    with scratch_database(tmp) as database:
        live = start_live(tmp, database.url, HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1")
        try:
            current = Site(live, browser)
            provision_panels(current)
            yield current
            current.close_contexts()
        finally:
            live.server.terminate()


def provision_panels(current: Site) -> None:
    current.create("counter", example("counter"))
    current.create("counter-shared", example("counter"))
    current.create("todo", example("todo"))
    current.create("monitor", example("monitor"), extensions={"http": {"baseURL": current.url}})
    current.create("markup", MARKUP_PANEL)
    current.create("faulty", FAULTY_PANEL)
    broken = current.create("broken", BROKEN_MOUNT_PANEL)
    assert broken["status"] == "error", broken
    response = current.live.api("POST", "/api/v1/workspaces/other/panels/", user="bob",
                                json={"id": "secret", "source": PRIVATE_PANEL})
    assert response.status_code == 201, response.text


@pytest.fixture
def pages(site: Site) -> Iterator[Site]:
    """The module's site; closes the test's browser contexts and fails on uncaught page errors."""
    from playwright.sync_api import expect

    site.page_errors.clear()
    expect.set_options(timeout=WAIT_MS)
    try:
        yield site
    finally:
        expect.set_options(timeout=None)
        site.close_contexts()
    assert site.page_errors == [], f"uncaught errors in the page: {site.page_errors}"
