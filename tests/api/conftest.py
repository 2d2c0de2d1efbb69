"""A small world for the REST tests: one workspace with a member of each role and a live counter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync

SAMPLES = Path(__file__).resolve().parents[2] / "workspaces" / "fixtures" / "panels"


def sample(name: str) -> str:
    return (SAMPLES / f"{name}.nxml").read_text(encoding="utf-8")


COUNTER = sample("counter")
MONITOR = sample("monitor")
TODO = sample("todo")

MOUNT_FAILS = COUNTER.replace(
    "</Logic>", "  <Lifecycle on=\"mount\"><Handler>throw new Error('boom');</Handler></Lifecycle>\n  </Logic>"
)


@dataclass
class World:
    workspace: Any
    other: Any
    owner: Any
    editor: Any
    viewer: Any
    outsider: Any
    counter: Any


def create_panel(workspace: Any, source: str = COUNTER, panel_id: str = "counter", **kwargs: Any) -> Any:
    from workspaces.services.panels import create_panel as service_create

    panel, _ = async_to_sync(service_create)(workspace, source, panel_id=panel_id, **kwargs)
    return panel


@pytest.fixture
def world(transactional_db: None, make_user, make_workspace) -> World:  # type: ignore[no-untyped-def]
    owner, editor = make_user("olivia"), make_user("eddie")
    viewer, outsider = make_user("victor"), make_user("oscar")
    workspace = make_workspace("ws", {owner: "owner", editor: "editor", viewer: "viewer"})
    other = make_workspace("other", {owner: "owner", editor: "owner", viewer: "owner"})
    return World(workspace, other, owner, editor, viewer, outsider, create_panel(workspace))


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    error = error_of(response)
    assert error["code"] == code, error
    return error
