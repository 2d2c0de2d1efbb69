"""Panel routes: each success with its shape, and each documented error with its status and code."""

from __future__ import annotations

from typing import Any

import pytest

from nexus import lifecycle
from tests.api.conftest import COUNTER, MONITOR, MOUNT_FAILS, TODO, World, assert_error, create_panel
from workspaces.models import Panel, PanelStatus
from workspaces.services.panels import ServiceError

PANELS = "/api/v1/workspaces/ws/panels"


@pytest.fixture
def owner(world: World, api_client_for: Any) -> Any:
    return api_client_for(world.owner)


# ---------------------------------------------------------------- list


def test_list_shape(world: World, owner: Any) -> None:
    response = owner.get(f"{PANELS}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"panels", "totalPanels", "maxPanels"}
    assert (body["totalPanels"], body["maxPanels"]) == (1, 10)
    (row,) = body["panels"]
    assert row["id"] == "counter" and row["title"] == "Counter" and row["status"] == "running"
    assert set(row) == {"id", "title", "version", "status", "stateVersion", "createdAt", "lastActivity",
                        "clientCount"}


# ---------------------------------------------------------------- create


def test_create_answers_201_with_websocket_and_initial_state(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/", {"id": "c2", "source": COUNTER}, format="json", HTTP_HOST="nexus.test:8080")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "ok" and body["panelId"] == "c2"
    assert body["websocket"] == "ws://nexus.test:8080/ws/workspaces/ws/panels/c2/"
    assert body["initialState"] == {"count": 0, "double": 0}
    assert "error" not in body
    assert Panel.objects.get(workspace=world.workspace, panel_id="c2").status == PanelStatus.RUNNING


def test_websocket_url_is_wss_behind_https(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/", {"id": "c3", "source": COUNTER}, format="json",
                          HTTP_HOST="nexus.example", HTTP_X_FORWARDED_PROTO="https")
    assert response.json()["websocket"] == "wss://nexus.example/ws/workspaces/ws/panels/c3/"


def test_create_takes_the_nxml_id_when_absent(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/", {"source": TODO}, format="json")
    assert response.status_code == 201
    assert response.json()["panelId"] == "tasks"
    again = owner.post(f"{PANELS}/", {"source": TODO}, format="json")
    assert again.status_code == 201
    assert again.json()["panelId"].startswith("tasks-")
    assert Panel.objects.filter(panel_id=again.json()["panelId"]).exists()


def test_create_stores_extension_config(world: World, owner: Any) -> None:
    config = {"http": {"baseURL": "https://status.example"}}
    response = owner.post(f"{PANELS}/", {"id": "m", "source": MONITOR, "extensions": config}, format="json")
    assert response.status_code == 201
    assert Panel.objects.get(panel_id="m").extension_config == config


def test_failing_mount_keeps_the_panel_in_error(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/", {"id": "broken", "source": MOUNT_FAILS}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "EXECUTION_ERROR" and "boom" in body["error"]["message"]
    panel = Panel.objects.get(panel_id="broken")
    assert panel.status == PanelStatus.ERROR
    detail = owner.get(f"{PANELS}/broken/").json()
    assert detail["status"] == "error" and "boom" in detail["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "bad id!", "source": COUNTER},
        {"id": "x" * 65, "source": COUNTER},
        {"id": "ok"},
        {"id": "ok", "source": 42},
        {"id": "ok", "source": "   "},
        {"id": "ok", "source": COUNTER, "extensions": ["http"]},
        {"id": "ok", "source": COUNTER, "extensions": {"http": "https://x"}},
        {"id": "validate", "source": COUNTER},
    ],
)
def test_create_request_errors(world: World, owner: Any, body: dict[str, Any]) -> None:
    assert_error(owner.post(f"{PANELS}/", body, format="json"), 400, "INVALID_REQUEST")
    assert Panel.objects.count() == 1


def test_create_with_malformed_json_is_invalid_request(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/", "{not json", content_type="application/json")
    assert_error(response, 400, "INVALID_REQUEST")


def test_create_with_invalid_nxml_is_located_and_stores_nothing(world: World, owner: Any) -> None:
    source = COUNTER.replace('<Button label="+1" trigger="increment" />', '<Button label="+1" trigger="nope" />')
    error = assert_error(owner.post(f"{PANELS}/", {"id": "bad", "source": source}, format="json"),
                         400, "INVALID_NXML")
    (problem,) = error["details"]["errors"]
    assert problem["code"] == "UNKNOWN_TRIGGER"
    line = next(i for i, text in enumerate(source.splitlines(), 1) if 'trigger="nope"' in text)
    assert problem["line"] == line and problem["column"] >= 1
    assert not Panel.objects.filter(panel_id="bad").exists()


def test_panel_exists_is_409(world: World, owner: Any) -> None:
    assert_error(owner.post(f"{PANELS}/", {"id": "counter", "source": COUNTER}, format="json"), 409, "PANEL_EXISTS")
    assert Panel.objects.count() == 1


def test_max_panels_is_429(world: World, owner: Any) -> None:
    world.workspace.max_panels = 2
    world.workspace.save()
    assert owner.post(f"{PANELS}/", {"id": "second", "source": COUNTER}, format="json").status_code == 201
    error = assert_error(owner.post(f"{PANELS}/", {"id": "third", "source": COUNTER}, format="json"),
                         429, "MAX_PANELS")
    assert error["details"] == {"maxPanels": 2}
    assert Panel.objects.filter(workspace=world.workspace).count() == 2


def test_body_over_the_limit_is_413(world: World, owner: Any) -> None:
    source = COUNTER.replace("Add to the counter", "A" * (10 * 1024 * 1024))
    assert_error(owner.post(f"{PANELS}/", {"id": "huge", "source": source}, format="json"), 413, "PAYLOAD_TOO_LARGE")
    assert_error(owner.post(f"{PANELS}/validate/", {"source": source}, format="json"), 413, "PAYLOAD_TOO_LARGE")
    assert not Panel.objects.filter(panel_id="huge").exists()


# ---------------------------------------------------------------- validate


def test_validate_valid_source(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/validate/", {"source": TODO}, format="json")
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}
    assert Panel.objects.count() == 1


def test_validate_lists_every_error_with_its_location(world: World, owner: Any) -> None:
    source = COUNTER.replace('type="number" default="0"', 'type="number" default="zero"').replace(
        'trigger="reset"', 'trigger="nothing"'
    )
    response = owner.post(f"{PANELS}/validate/", {"source": source}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {error["code"] for error in body["errors"]} == {"INVALID_DEFAULT", "UNKNOWN_TRIGGER"}
    assert all(error["line"] >= 1 and error["column"] >= 1 for error in body["errors"])
    assert Panel.objects.count() == 1


def test_validate_request_errors(world: World, owner: Any) -> None:
    assert_error(owner.post(f"{PANELS}/validate/", {}, format="json"), 400, "INVALID_REQUEST")
    assert_error(owner.post(f"{PANELS}/validate/", {"source": ["x"]}, format="json"), 400, "INVALID_REQUEST")


# ---------------------------------------------------------------- detail and state


def test_detail_shape(world: World, owner: Any) -> None:
    response = owner.get(f"{PANELS}/counter/")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["title"], body["status"]) == ("counter", "Counter", "running")
    assert body["state"] == {"count": 0, "double": 0}
    assert body["stateVersion"] == 0 and body["clientCount"] == 0 and body["error"] is None
    assert body["createdAt"] and body["lastActivity"]
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert set(tools) == {"increment", "reset"}
    assert tools["increment"]["description"] == "Add to the counter"
    assert tools["increment"]["argsSchema"] == {
        "type": "object",
        "properties": {"by": {"type": "number", "default": 1}},
        "required": [],
        "additionalProperties": False,
    }
    assert body["view"]["type"] == "View"
    layout = body["view"]["children"][0]
    assert layout["type"] == "Layout" and layout["props"]["strategy"] == "stack"


def test_state_shape(world: World, owner: Any) -> None:
    owner.post(f"{PANELS}/counter/tools/increment/", {"args": {"by": 3}}, format="json")
    response = owner.get(f"{PANELS}/counter/state/")
    assert response.status_code == 200
    assert response.json() == {"panelId": "counter", "state": {"count": 3, "double": 6}, "stateVersion": 1}


@pytest.mark.parametrize("suffix", ["missing/", "missing/state/", "missing/tools/increment/"])
def test_unknown_panel_is_404(world: World, owner: Any, suffix: str) -> None:
    method = owner.post if suffix.endswith("increment/") else owner.get
    assert_error(method(f"{PANELS}/{suffix}", {}, format="json"), 404, "NOT_FOUND")


# ---------------------------------------------------------------- running tools


def test_run_tool_answers_with_the_result_body(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/counter/tools/increment/", {"args": {"by": 5}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["returnValue"] == 5
    assert {"key": "count", "value": 5, "operation": "set"} in body["mutations"]
    assert {"key": "double", "value": 10, "operation": "set"} in body["mutations"]
    assert body["events"] == [{"name": "changed", "payload": 5}]
    assert body["viewCommands"] == [] and body["stateVersion"] == 1
    assert "type" not in body and "error" not in body


def test_defaults_fill_missing_args_and_an_empty_body_is_fine(world: World, owner: Any) -> None:
    assert owner.post(f"{PANELS}/counter/tools/increment/").json()["returnValue"] == 1
    assert owner.post(f"{PANELS}/counter/tools/increment/", {}, format="json").json()["returnValue"] == 2


@pytest.mark.parametrize(
    "args",
    [{"by": "two"}, {"by": 1, "extra": True}, ["by", 1], "by=1"],
)
def test_bad_args_are_invalid_args(world: World, owner: Any, args: Any) -> None:
    response = owner.post(f"{PANELS}/counter/tools/increment/", {"args": args}, format="json")
    assert_error(response, 400, "INVALID_ARGS")
    assert Panel.objects.get(panel_id="counter").state_version == 0


def test_missing_required_arg_is_invalid_args(world: World, owner: Any) -> None:
    create_panel(world.workspace, TODO, "todo")
    response = owner.post(f"{PANELS}/todo/tools/toggle/", {"args": {}}, format="json")
    assert_error(response, 400, "INVALID_ARGS")


def test_bad_scope_is_invalid_request(world: World, owner: Any) -> None:
    response = owner.post(f"{PANELS}/counter/tools/increment/", {"scope": [1]}, format="json")
    assert_error(response, 400, "INVALID_REQUEST")


def test_unknown_tool_is_404(world: World, owner: Any) -> None:
    assert_error(owner.post(f"{PANELS}/counter/tools/explode/", {}, format="json"), 404, "TOOL_NOT_FOUND")


def test_failing_handler_is_200_with_status_error(world: World, owner: Any) -> None:
    create_panel(world.workspace, TODO, "todo")
    response = owner.post(f"{PANELS}/todo/tools/toggle/", {"args": {"id": 99}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "EXECUTION_ERROR" and "No todo 99" in body["error"]["message"]
    assert body["mutations"] == []


def test_failing_handler_answers_the_current_state_version(world: World, owner: Any) -> None:
    create_panel(world.workspace, TODO, "todo")
    for _ in range(2):
        owner.post(f"{PANELS}/todo/tools/remove/", {"args": {"id": 1}}, format="json")
    body = owner.post(f"{PANELS}/todo/tools/toggle/", {"args": {"id": 99}}, format="json").json()
    assert body["status"] == "error"
    assert body["stateVersion"] == Panel.objects.get(panel_id="todo").state_version == 2


def test_stopped_panel_refuses_tools(world: World, owner: Any) -> None:
    from asgiref.sync import async_to_sync

    from workspaces.services.panels import stop_panel

    async_to_sync(stop_panel)(Panel.objects.select_related("workspace").get(panel_id="counter"))
    assert_error(owner.post(f"{PANELS}/counter/tools/increment/", {}, format="json"), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("code", ["RUNTIME_BUSY", "UNAVAILABLE"])
def test_service_unavailability_is_503(world: World, owner: Any, monkeypatch: Any, code: str) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise ServiceError(code, "try again later")

    monkeypatch.setattr("workspaces.services.panels.run_tool", refuse)
    assert_error(owner.post(f"{PANELS}/counter/tools/increment/", {}, format="json"), 503, code)


def test_draining_server_is_unavailable(world: World, owner: Any) -> None:
    lifecycle.start_draining()
    try:
        assert_error(owner.post(f"{PANELS}/counter/tools/increment/", {}, format="json"), 503, "UNAVAILABLE")
    finally:
        lifecycle.reset()


# ---------------------------------------------------------------- delete


def test_delete_then_gone(world: World, owner: Any) -> None:
    assert owner.delete(f"{PANELS}/counter/").status_code == 204
    assert not Panel.objects.filter(panel_id="counter").exists()
    assert_error(owner.delete(f"{PANELS}/counter/"), 404, "NOT_FOUND")
    assert_error(owner.get(f"{PANELS}/counter/"), 404, "NOT_FOUND")
