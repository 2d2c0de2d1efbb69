"""Tool names: {panelId}__{toolName}, where panel ids and tool names may contain the separator themselves."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.api.conftest import COUNTER, create_panel
from workspaces.mcp import tools
from workspaces.services.panels import ServiceError

TWO_UNDERSCORES = COUNTER.replace('name="reset"', 'name="re__set"').replace('trigger="reset"', 'trigger="re__set"')


@pytest.fixture
def workspace(transactional_db: None, make_workspace: Any) -> Any:
    workspace = make_workspace("names")
    create_panel(workspace, COUNTER, panel_id="a__b")
    create_panel(workspace, TWO_UNDERSCORES, panel_id="a")
    return workspace


def resolve(workspace: Any, name: str) -> tuple[str, str]:
    panel, tool = async_to_sync(tools._resolve)(workspace, name)
    return panel.panel_id, tool


def test_names_resolve_to_the_panel_that_has_the_tool(workspace: Any) -> None:
    assert resolve(workspace, "a__b__increment") == ("a__b", "increment")
    assert resolve(workspace, "a__re__set") == ("a", "re__set")
    assert resolve(workspace, "a__increment") == ("a", "increment")


@pytest.mark.parametrize("name", ["a__nothing", "__increment", "increment", "nowhere__increment", "a__b__re__set"])
def test_a_name_without_a_tool_is_tool_not_found(workspace: Any, name: str) -> None:
    with pytest.raises(ServiceError) as raised:
        resolve(workspace, name)
    assert raised.value.code == "TOOL_NOT_FOUND"
    assert "<panelId>__<toolName>" in raised.value.message


def test_listed_names_are_those_that_resolve(workspace: Any) -> None:
    names = [tool.name for tool in async_to_sync(tools._list)(workspace)]
    assert "a__re__set" in names and "a__b__increment" in names
    for name in names:
        panel_id, tool = resolve(workspace, name)
        assert tools.tool_name(panel_id, tool) == name
