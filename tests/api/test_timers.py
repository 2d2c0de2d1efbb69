"""A handler that awaits nexus.timer resumes with the time it woke up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync

from tests.api.conftest import World, create_panel
from workspaces.services.panels import run_tool

SLEEPER = """<NexusPanel id="sleeper" title="Sleeper">
  <Data><State name="woke" type="string" default="" /></Data>
  <Logic>
    <Extension name="nexus.timer" alias="timer" />
    <Tool name="nap"><Arg name="ms" type="number" />
      <Capabilities>
        <Capability type="state:write" scope="*" />
        <Capability type="ext:timer" scope="*" />
      </Capabilities>
      <Handler>
        try { $state.woke = await $ext.timer.sleep($args.ms); }
        catch (e) { $state.woke = 'refused: ' + e.message; }
        return $state.woke;
      </Handler>
    </Tool>
  </Logic>
  <View><Metric label="Woke" value="{$state.woke}" /></View>
</NexusPanel>"""


def test_a_handler_sleeps_and_resumes_with_the_time(world: World) -> None:
    panel = create_panel(world.workspace, SLEEPER, panel_id="sleeper")
    before = datetime.now(UTC)
    outcome = async_to_sync(run_tool)(panel, "nap", {"ms": 300})
    assert outcome.status == "success", outcome.error
    woke = datetime.fromisoformat(outcome.return_value)
    assert woke - before >= timedelta(milliseconds=300)
    refused = async_to_sync(run_tool)(panel, "nap", {"ms": -5})
    assert refused.return_value.startswith("refused: timer.sleep takes 0 to")


def test_the_reminder_sample_waits_then_reminds(world: World, api_client_for: Any) -> None:
    from tests.api.conftest import sample

    owner = api_client_for(world.owner)
    created = owner.post("/api/v1/workspaces/ws/panels/", {"source": sample("reminder")}, format="json")
    assert created.status_code == 201, created.json()
    ran = owner.post("/api/v1/workspaces/ws/panels/reminder/tools/remindMe/", {"args": {"seconds": 0.2}},
                     format="json")
    assert ran.status_code == 200, ran.json()
    state = owner.get("/api/v1/workspaces/ws/panels/reminder/state/").json()["state"]
    assert state["waiting"] is False
    assert [entry["note"] for entry in state["reminded"]] == ["Stretch your legs"]
