"""Workspace quotas in one process: each answered on REST, in a handler and by schedules; overrides win."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY

from tests.api.conftest import World, assert_error, create_panel
from workspaces.models import WorkspaceQuota
from workspaces.services import quotas

PANELS = "/api/v1/workspaces/{}/panels"
# One window for the whole test: a minute turning over halfway cannot refill a budget.
HOUR_MS = 3_600_000

HTTP_PANEL = """<NexusPanel id="caller" title="Caller">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Extension name="nexus.http" alias="http" />
    <Tool name="twice">
      <Handler>
        const codes = [];
        for (const attempt of [1, 2]) {
          try { await $ext.http.get('http://169.254.169.254/latest/meta-data/'); codes.push('ok'); }
          catch (e) { codes.push(e.code || 'no code'); }
        }
        return codes;
      </Handler>
    </Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    quotas.use_counters(quotas.LocalCounters(window_ms=HOUR_MS))
    quotas.forget_limits()
    yield
    quotas.use_counters(None)
    quotas.forget_limits()


@pytest.fixture
def owner(world: World, api_client_for: Any) -> Any:
    return api_client_for(world.owner)


def override(workspace: Any, **limits: int) -> None:
    quotas.save_override(WorkspaceQuota(workspace=workspace, **limits))


def increment(client: Any, workspace: str = "ws") -> Any:
    return client.post(f"{PANELS.format(workspace)}/counter/tools/increment/", {"args": {"by": 1}}, format="json")


def rejections(quota: str) -> float:
    return REGISTRY.get_sample_value("nexus_quota_rejections_total", {"quota": quota}) or 0.0


def assert_quota_answer(response: Any, quota: str, limit: int) -> dict[str, Any]:
    error = assert_error(response, 429, "QUOTA_EXCEEDED")
    details = error["details"]
    assert (details["quota"], details["limit"]) == (quota, limit)
    assert isinstance(details["retryAfter"], int) and details["retryAfter"] >= 1
    assert response["Retry-After"] == str(details["retryAfter"])
    return details


def test_runs_over_the_executions_budget_answer_429_with_retry_after(world: World, owner: Any) -> None:
    override(world.workspace, executions_per_minute=2)
    before = rejections("executions")
    assert [increment(owner).status_code for _ in range(2)] == [200, 200]
    assert_quota_answer(increment(owner), "executions", 2)
    assert rejections("executions") == before + 1
    world.counter.refresh_from_db()
    assert world.counter.state["count"] == 2, "the refused run changed nothing"
    create_panel(world.other)
    assert increment(owner, "other").status_code == 200, "another workspace keeps its own budget"


def test_a_workspace_override_beats_the_default(world: World, owner: Any, settings: Any) -> None:
    settings.NEXUS = dataclasses.replace(settings.NEXUS, WORKSPACE_EXECUTIONS_PER_MINUTE=1)
    override(world.workspace, executions_per_minute=3)
    create_panel(world.other)
    assert [increment(owner).status_code for _ in range(3)] == [200, 200, 200]
    assert_quota_answer(increment(owner), "executions", 3)
    assert increment(owner, "other").status_code == 200
    assert_quota_answer(increment(owner, "other"), "executions", 1)


def test_executions_at_once_are_bounded_per_workspace(world: World, owner: Any) -> None:
    override(world.workspace, max_concurrent=1)

    async def while_one_runs() -> Any:
        async with quotas.execution_slot("ws"):
            return await sync_increment(owner)

    from asgiref.sync import sync_to_async

    sync_increment = sync_to_async(increment, thread_sensitive=False)
    details = assert_quota_answer(async_to_sync(while_one_runs)(), "concurrent", 1)
    assert details["retryAfter"] == quotas.CONCURRENT_RETRY_S
    assert quotas.running("ws") == 0
    assert increment(owner).status_code == 200, "the slot is free again"


def test_sandbox_time_is_charged_after_each_run(world: World, owner: Any) -> None:
    override(world.workspace, sandbox_ms_per_minute=1)
    assert increment(owner).status_code == 200  # at least 1 ms is charged for it
    assert_quota_answer(increment(owner), "sandbox_ms", 1)
    assert (quotas.usage_of("ws")["sandbox_ms"]["used"] or 0) >= 1


def test_an_http_call_over_budget_throws_a_catchable_error_in_the_handler(world: World, owner: Any) -> None:
    override(world.workspace, http_calls_per_minute=1)
    create_panel(world.workspace, HTTP_PANEL, panel_id="caller")
    response = owner.post(f"{PANELS.format('ws')}/caller/tools/twice/", {}, format="json")
    assert response.status_code == 200, response.content
    first, second = response.json()["returnValue"]
    assert first != "QUOTA_EXCEEDED"  # the first call is within budget (the address itself is refused)
    assert second == "QUOTA_EXCEEDED"
    assert quotas.usage_of("ws")["http_calls"] == {"used": 1, "limit": 1}


def test_owners_read_their_quotas_and_cannot_write_them(world: World, owner: Any, api_client_for: Any) -> None:
    override(world.workspace, executions_per_minute=7)
    body = owner.get("/api/v1/workspaces/ws/").json()
    assert body["quotas"]["executionsPerMinute"] == 7
    assert body["quotas"]["maxConcurrent"] == 4  # the default
    assert api_client_for(world.viewer).get("/api/v1/workspaces/ws/").json()["quotas"] is None
    refused = owner.patch("/api/v1/workspaces/ws/", {"quotas": {"executionsPerMinute": 10**6}}, format="json")
    assert_error(refused, 400, "INVALID_REQUEST")


def test_a_tick_over_quota_is_recorded_as_skipped(world: World, settings: Any) -> None:
    from tests.schedules.conftest import TICKER, run_claim
    from tests.schedules.test_schedule_service import make_due, only, rows, runs_total
    from workspaces.services import schedules

    settings.NEXUS = dataclasses.replace(settings.NEXUS, SCHEDULE_MIN_INTERVAL=1)
    ticker = create_panel(world.workspace, TICKER, panel_id="ticker")
    only(ticker, "tick")
    override(world.workspace, executions_per_minute=1)
    first, = schedules.claim_due(make_due(ticker, "tick"))
    assert run_claim(first)["status"] == "success"
    skipped = runs_total("skipped")
    second, = schedules.claim_due(make_due(ticker, "tick"))
    result = run_claim(second)
    assert result["status"] == "skipped" and result["error"]["code"] == "QUOTA_EXCEEDED"
    row = rows(ticker)["tick"]
    assert (row.last_status, row.runs, row.skipped, row.failures) == ("skipped", 1, 1, 0)
    assert runs_total("skipped") == skipped + 1


@pytest.mark.django_db
def test_the_schema_documents_quota_answers_of_tool_runs() -> None:
    from django.test import Client

    schema = Client().get("/api/v1/schema/", {"format": "json"}).json()
    run = schema["paths"]["/api/v1/workspaces/{slug}/panels/{panel_id}/tools/{tool}/"]["post"]
    assert "QUOTA_EXCEEDED" in run["responses"]["429"]["description"]
    workspace = schema["components"]["schemas"]["Workspace"]["properties"]
    assert "quotas" in workspace


def test_a_run_asked_for_over_quota_is_recorded_as_skipped(world: World, owner: Any, settings: Any) -> None:
    from tests.schedules.conftest import TICKER

    settings.NEXUS = dataclasses.replace(settings.NEXUS, SCHEDULE_MIN_INTERVAL=1)
    create_panel(world.workspace, TICKER, panel_id="ticker")
    override(world.workspace, executions_per_minute=1)
    url = f"{PANELS.format('ws')}/ticker/schedules/tick/run/"
    assert owner.post(url).json()["result"]["status"] == "success"
    body = owner.post(url).json()
    assert body["result"]["status"] == "skipped"
    assert body["result"]["error"]["code"] == "QUOTA_EXCEEDED"
    assert body["schedule"]["lastStatus"] == "skipped"


NAPPER = """<NexusPanel id="napper" title="Napper">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Extension name="nexus.timer" alias="timer" />
    <Tool name="nap"><Handler>await $ext.timer.sleep(1500); $state.n = $state.n + 1;</Handler></Tool>
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


def test_a_run_waiting_on_an_extension_leaves_its_place_free(world: World, owner: Any) -> None:
    import asyncio

    from workspaces.services.panels import run_tool

    override(world.workspace, max_concurrent=1)
    napper = create_panel(world.workspace, NAPPER, panel_id="napper")

    async def three_naps_at_once() -> list[Any]:
        naps = []
        for _ in range(3):  # each starts once the one before waits on its timer
            naps.append(asyncio.ensure_future(run_tool(napper, "nap")))
            await asyncio.sleep(0.05)
            for _ in range(40):
                if quotas.running("ws") == 0:
                    break
                await asyncio.sleep(0.02)
        in_flight = sum(not nap.done() for nap in naps)
        return [in_flight, *await asyncio.gather(*naps)]

    in_flight, *outcomes = async_to_sync(three_naps_at_once)()
    assert in_flight == 3, "the three waited at the same time"
    assert [outcome.status for outcome in outcomes] == ["success"] * 3, [o.error for o in outcomes]
    assert quotas.running("ws") == 0
