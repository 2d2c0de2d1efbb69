"""<Computed> values are JavaScript expressions over $state, computed in the sandbox after every change."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World, assert_error

PANELS = "/api/v1/workspaces/ws/panels"

POLL = """<NexusPanel id="poll" title="Poll">
  <Data>
    <State name="votes" type="object" default='{"red": 0, "blue": 0}' />
    <Computed name="total" value="Object.values($state.votes).reduce((a, b) =&gt; a + b, 0)" />
    <Computed name="leader" value="Object.entries($state.votes).sort((a, b) =&gt; b[1] - a[1])[0][0]" />
    <Computed name="broken" value="$state.votes.missing.deeper" />
    <Computed name="forever" value="(() =&gt; { while (true) {} })()" />
  </Data>
  <Logic>
    <Tool name="vote"><Arg name="colour" type="string" required="true" />
      <Handler>$state.votes[$args.colour] = ($state.votes[$args.colour] || 0) + 1; return $state.total;</Handler>
    </Tool>
  </Logic>
  <View><Metric label="Votes" value="{$state.total}" /><Text content="{$state.leader}" /></View>
</NexusPanel>"""


def test_computed_javascript_follows_the_state(world: World, api_client_for: Any) -> None:
    owner = api_client_for(world.owner)
    source = POLL.replace('    <Computed name="forever" value="(() =&gt; { while (true) {} })()" />\n', "")
    created = owner.post(f"{PANELS}/", {"source": source}, format="json")
    assert created.status_code == 201, created.json()
    for colour in ("blue", "red", "blue"):
        voted = owner.post(f"{PANELS}/poll/tools/vote/", {"args": {"colour": colour}}, format="json")
        assert voted.status_code == 200, voted.json()
    state = owner.get(f"{PANELS}/poll/state/").json()["state"]
    assert (state["total"], state["leader"]) == (3, "blue")
    assert state["broken"] is None, "an expression that throws is null and blocks nothing"


def test_a_computed_value_that_runs_too_long_blocks_no_tool(world: World, api_client_for: Any) -> None:
    owner = api_client_for(world.owner)
    assert owner.post(f"{PANELS}/", {"source": POLL}, format="json").status_code == 201
    voted = owner.post(f"{PANELS}/poll/tools/vote/", {"args": {"colour": "red"}}, format="json")
    assert voted.status_code == 200, voted.json()
    state = owner.get(f"{PANELS}/poll/state/").json()["state"]
    assert state["votes"]["red"] == 1
    assert state["total"] is None and state["forever"] is None


def test_a_computed_value_that_writes_state_is_refused_with_its_place(world: World, api_client_for: Any) -> None:
    owner = api_client_for(world.owner)
    writes = POLL.replace("Object.values($state.votes).reduce", "($state.votes.red = 5) &amp;&amp; [].reduce")
    error = assert_error(owner.post(f"{PANELS}/", {"source": writes}, format="json"), 400, "INVALID_NXML")
    problems = error["details"]["errors"]
    assert [problem["code"] for problem in problems] == ["INVALID_EXPRESSION"], problems
    assert "may not assign to $state" in problems[0]["message"] and problems[0]["line"] == 4
