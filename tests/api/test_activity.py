"""The activity log: each run of a panel kept with its $log lines, bounded, readable by every member."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.api.conftest import World, assert_error, create_panel
from workspaces.models import PanelRun
from workspaces.services import activity

CHATTY = """<NexusPanel id="chatty" title="Chatty">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Tool name="talk">
      <Arg name="word" type="string" default="hi" />
      <Handler><![CDATA[
        $log.debug('starting');
        $log('said', $args.word);
        if ($args.word.length > 3) $log.warn('long word');
        $state.n = $state.n + 1;
      ]]></Handler>
    </Tool>
    <Tool name="fail"><Handler>$log.error('about to fail'); throw new Error('nope');</Handler></Tool>
    <Lifecycle on="mount"><Handler>$log('mounted');</Handler></Lifecycle>
  </Logic>
  <View><Button label="Talk" trigger="talk" /></View>
</NexusPanel>"""

ACTIVITY = "/api/v1/workspaces/ws/panels/chatty/activity/"


@pytest.fixture
def chatty(world: World) -> Any:
    return create_panel(world.workspace, CHATTY, panel_id="chatty")


def trigger(client: Any, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(f"/api/v1/workspaces/ws/panels/chatty/tools/{tool}/", {"args": args or {}}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_runs_are_listed_newest_first_with_their_logs(world: World, chatty: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    trigger(editor, "talk", {"word": "hello"})
    trigger(editor, "fail")
    body = api_client_for(world.viewer).get(ACTIVITY).json()
    assert body["count"] == 3
    failed, talked, mounted = body["results"]
    assert (mounted["kind"], mounted["handler"], mounted["status"]) == ("lifecycle", "mount", "success")
    assert mounted["logs"] == [{"level": "info", "message": "mounted"}]
    assert (talked["kind"], talked["handler"], talked["actor"], talked["error"]) == ("tool", "talk", "eddie", None)
    assert talked["logs"] == [
        {"level": "debug", "message": "starting"},
        {"level": "info", "message": "said hello"},
        {"level": "warn", "message": "long word"},
    ]
    assert talked["durationMs"] > 0 and talked["startedAt"]
    assert failed["status"] == "error" and failed["error"]["code"] == "EXECUTION_ERROR"
    assert "nope" in failed["error"]["message"]
    assert failed["logs"] == [{"level": "error", "message": "about to fail"}]


def test_only_the_newest_runs_are_kept(world: World, chatty: Any, api_client_for: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(activity, "RUNS_KEPT_PER_PANEL", 3)
    editor = api_client_for(world.editor)
    for word in ("a", "b", "c", "d"):
        trigger(editor, "talk", {"word": word})
    kept = activity.runs_of(chatty)
    assert [run.logs[1]["message"] for run in kept] == ["said d", "said c", "said b"]


def test_pages(world: World, chatty: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    for _ in range(3):
        trigger(editor, "talk")
    first = editor.get(ACTIVITY, {"page_size": 2}).json()
    assert first["count"] == 4 and len(first["results"]) == 2 and first["next"]
    second = editor.get(ACTIVITY, {"page_size": 2, "page": 2}).json()
    assert second["results"][-1]["handler"] == "mount"


def test_outsiders_and_unknown_panels(world: World, chatty: Any, api_client_for: Any) -> None:
    assert_error(api_client_for(world.outsider).get(ACTIVITY), 404, "NOT_FOUND")
    assert_error(api_client_for(world.viewer).get("/api/v1/workspaces/ws/panels/nope/activity/"), 404, "NOT_FOUND")


def test_log_lines_reach_the_server_log(world: World, chatty: Any, api_client_for: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="nexus.handlers"):
        trigger(api_client_for(world.editor), "talk", {"word": "hello"})
    lines = [(r.levelno, r.getMessage(), getattr(r, "panel", None), getattr(r, "handler", None))
             for r in caplog.records if r.name == "nexus.handlers"]
    assert lines == [
        (logging.DEBUG, "ws/chatty talk: starting", "ws/chatty", "talk"),
        (logging.INFO, "ws/chatty talk: said hello", "ws/chatty", "talk"),
        (logging.WARNING, "ws/chatty talk: long word", "ws/chatty", "talk"),
    ]


def test_a_flood_of_log_lines_is_cut(world: World, api_client_for: Any) -> None:
    source = CHATTY.replace("$log.debug('starting');", "for (let i = 0; i < 500; i++) $log.debug('line', i);")
    create_panel(world.workspace, source, panel_id="chatty")
    trigger(api_client_for(world.editor), "talk")
    activity.flush()
    run = PanelRun.objects.filter(handler="talk").get()
    assert len(run.logs) == activity.MAX_LOG_LINES + 1
    assert run.logs[-1] == {"level": "warn", "message": f"{500 + 1 - activity.MAX_LOG_LINES} more line(s) not kept"}


def test_the_schema_documents_the_route(world: World, api_client_for: Any) -> None:
    paths = api_client_for(world.owner).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    route = paths["/api/v1/workspaces/{slug}/panels/{panel_id}/activity/"]["get"]
    assert "PaginatedPanelRunList" in str(route["responses"]["200"])


def test_a_run_of_a_deleted_panel_does_not_cost_the_others(world: World, chatty: Any) -> None:
    from django.utils import timezone

    def finished(panel_pk: int) -> activity.FinishedRun:
        return activity.FinishedRun(panel_pk, "ws/x", "tool", "talk", "eddie", timezone.now(), "success", 1.0,
                                    None, [])

    activity.submit(finished(chatty.pk))
    activity.submit(finished(10**9))  # no such panel (deleted while its run was queued)
    activity.submit(finished(chatty.pk))
    assert [run.handler for run in activity.runs_of(chatty)] == ["talk", "talk", "mount"]
