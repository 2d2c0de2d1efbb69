"""REST: the panel detail lists its schedules; editors pause, resume and run them, viewers may not."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World, assert_error
from workspaces.models import Schedule

PANEL = "/api/v1/workspaces/ws/panels/ticker/"


def steer(client: Any, name: str, verb: str) -> Any:
    return client.post(f"{PANEL}schedules/{name}/{verb}/", format="json")


def test_the_panel_detail_lists_its_schedules(world: World, ticker: Any, api_client_for: Any) -> None:
    body = api_client_for(world.viewer).get(PANEL).json()
    listed = {item["name"]: item for item in body["schedules"]}
    assert sorted(listed) == ["failing", "quiet", "tick"]
    tick = listed["tick"]
    assert (tick["tool"], tick["expression"], tick["args"], tick["paused"]) == ("tick", "every 1s", {"by": 2}, False)
    assert tick["nextRunAt"] and tick["lastRunAt"] is None and tick["lastStatus"] == ""
    assert listed["quiet"]["paused"] is True


def test_editors_pause_resume_and_run(world: World, ticker: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    paused = steer(editor, "tick", "pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert Schedule.objects.get(panel=ticker, name="tick").paused
    resumed = steer(editor, "tick", "resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    ran = steer(editor, "tick", "run")
    assert ran.status_code == 200, ran.content
    body = ran.json()
    assert body["result"]["status"] == "success" and body["result"]["returnValue"] == 2
    assert (body["schedule"]["runs"], body["schedule"]["lastStatus"]) == (1, "success")
    failed = steer(editor, "failing", "run").json()
    assert failed["result"]["status"] == "error" and failed["schedule"]["lastError"]["code"] == "EXECUTION_ERROR"


def test_viewers_may_not_steer(world: World, ticker: Any, api_client_for: Any) -> None:
    viewer = api_client_for(world.viewer)
    for verb in ("pause", "resume", "run"):
        assert_error(steer(viewer, "tick", verb), 403, "FORBIDDEN")
    assert not Schedule.objects.get(panel=ticker, name="tick").paused


def test_unknown_schedules_and_a_running_one(world: World, ticker: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    error = assert_error(steer(editor, "nope", "pause"), 404, "NOT_FOUND")
    assert "failing, quiet, tick" in error["message"]
    from workspaces.services import schedules

    schedules.claim_now(Schedule.objects.get(panel=ticker, name="tick"))
    assert_error(steer(editor, "tick", "run"), 409, "SCHEDULE_RUNNING")


def test_a_stopped_panel_s_schedule_does_not_run_now(world: World, ticker: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    assert editor.post(f"{PANEL}stop/").status_code == 200
    assert_error(steer(editor, "tick", "run"), 400, "INVALID_REQUEST")


def test_the_schedule_routes_are_in_the_openapi_schema(world: World, api_client_for: Any) -> None:
    schema = api_client_for(world.viewer).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for verb in ("pause", "resume", "run"):
        path = schema["paths"][f"/api/v1/workspaces/{{slug}}/panels/{{panel_id}}/schedules/{{name}}/{verb}/"]
        assert set(path["post"]["responses"]) >= {"200", "403", "404"}
    detail = schema["components"]["schemas"]["PanelDetail"]["properties"]
    assert "schedules" in detail
