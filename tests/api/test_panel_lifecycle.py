"""Starting and stopping a panel over REST: the mount and unmount handlers through the panel service."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import MOUNT_FAILS, World, assert_error, create_panel
from workspaces.models import Panel, PanelStatus

PANELS = "/api/v1/workspaces/ws/panels"


@pytest.fixture
def editor(world: World, api_client_for: Any) -> Any:
    return api_client_for(world.editor)


def status_of(panel_id: str) -> str:
    return Panel.objects.get(panel_id=panel_id).status


def test_stop_then_start(world: World, editor: Any) -> None:
    stopped = editor.post(f"{PANELS}/counter/stop/")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json() == {"panelId": "counter", "status": "stopped", "error": None}
    assert status_of("counter") == PanelStatus.STOPPED
    assert_error(editor.post(f"{PANELS}/counter/tools/increment/", {"args": {}}, format="json"),
                 400, "INVALID_REQUEST")

    started = editor.post(f"{PANELS}/counter/start/")
    assert started.json() == {"panelId": "counter", "status": "running", "error": None}
    ran = editor.post(f"{PANELS}/counter/tools/increment/", {"args": {}}, format="json")
    assert ran.status_code == 200 and ran.json()["status"] == "success", ran.content


def test_start_of_a_panel_whose_mount_fails_answers_its_error(world: World, editor: Any) -> None:
    create_panel(world.workspace, MOUNT_FAILS, panel_id="broken")
    assert status_of("broken") == PanelStatus.ERROR
    response = editor.post(f"{PANELS}/broken/start/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and "boom" in body["error"]["message"], body
    assert status_of("broken") == PanelStatus.ERROR


def test_viewers_may_not_start_or_stop(world: World, api_client_for: Any) -> None:
    viewer = api_client_for(world.viewer)
    assert_error(viewer.post(f"{PANELS}/counter/stop/"), 403, "FORBIDDEN")
    assert_error(viewer.post(f"{PANELS}/counter/start/"), 403, "FORBIDDEN")
    assert status_of("counter") == PanelStatus.RUNNING


def test_start_of_an_unknown_panel_is_not_found(world: World, editor: Any) -> None:
    assert_error(editor.post(f"{PANELS}/nope/start/"), 404, "NOT_FOUND")
