"""A panel with schedules, in a workspace with a member of each role, and a short minimum interval."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.api.conftest import World, create_panel, world  # noqa: F401 - the world fixture, shared

TICKER = """<NexusPanel id="ticker" title="Ticker">
  <Data><State name="n" type="number" default="0" /></Data>
  <Logic>
    <Tool name="tick"><Arg name="by" type="number" default="1" />
      <Handler>$state.n = $state.n + $args.by; return $state.n;</Handler></Tool>
    <Tool name="fail"><Handler>throw new Error('broken on purpose');</Handler></Tool>
    <Tool name="spin"><Handler>const t = Date.now(); while (Date.now() - t &lt; 1500) {} $state.n += 1;</Handler></Tool>
    <Schedule tool="tick" every="1s" args='{"by": 2}' />
    <Schedule name="failing" tool="fail" every="1s" />
    <Schedule name="quiet" tool="tick" every="1h" enabled="false" missed="skip" />
  </Logic>
  <View><Metric label="n" value="{$state.n}" /></View>
</NexusPanel>"""


@pytest.fixture(autouse=True)
def one_second_minimum(settings: Any) -> None:
    settings.NEXUS = dataclasses.replace(settings.NEXUS, SCHEDULE_MIN_INTERVAL=1)


@pytest.fixture
def ticker(world: World) -> Any:  # noqa: F811 - the imported fixture is a parameter here
    return create_panel(world.workspace, TICKER, panel_id="ticker")


def run_claim(claim: Any) -> dict[str, Any]:
    from workspaces.services import schedules

    result: dict[str, Any] = async_to_sync(schedules.run)(claim)
    return result
