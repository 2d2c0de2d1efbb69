"""Update in place over REST: the state migration, revisions, conflicts, restore and who may do it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import COUNTER, World, assert_error, create_panel
from workspaces.models import Panel, PanelRevision

PANEL = "/api/v1/workspaces/ws/panels/counter"

TYPED = """<NexusPanel id="typed" title="Typed">
  <Data>
    <State name="keep" type="number" default="0" />
    <State name="gone" type="string" default="x" />
    <State name="label" type="number" default="0" />
    <State name="flag" type="list" default="[]" />
    <State name="text" type="string" default="7" />
  </Data>
  <Logic>
    <Tool name="fill"><Handler>
      $state.keep = 41; $state.gone = "bye"; $state.label = 3; $state.flag = [1]; $state.text = "2.5";
    </Handler></Tool>
  </Logic>
  <View><Text content="{$state.keep}" /></View>
</NexusPanel>"""

RETYPED = """<NexusPanel id="typed" title="Retyped">
  <Data>
    <State name="keep" type="number" default="0" />
    <State name="fresh" type="boolean" default="true" />
    <State name="label" type="string" default="none" />
    <State name="flag" type="boolean" default="false" />
    <State name="text" type="number" default="0" />
  </Data>
  <Logic>
    <Tool name="fill"><Handler>$state.keep = 1;</Handler></Tool>
  </Logic>
  <View><Text content="{$state.keep}" /></View>
</NexusPanel>"""

WITH_UPDATE_HOOK = COUNTER.replace(
    "</Logic>",
    '  <Lifecycle on="update"><Handler>$state.count = $state.count + 100;</Handler></Lifecycle>\n  </Logic>',
).replace('title="Counter"', 'title="Hooked"')


@pytest.fixture
def owner(world: World, api_client_for: Any) -> Any:
    return api_client_for(world.owner)


def patch(client: Any, body: dict[str, Any], panel: str = PANEL) -> Any:
    return client.patch(f"{panel}/", body, format="json")


def run(client: Any, tool: str, panel: str = PANEL) -> None:
    response = client.post(f"{panel}/tools/{tool}/", {"args": {}}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "success", response.content


def test_a_new_panel_has_revision_one(world: World, owner: Any) -> None:
    revision = PanelRevision.objects.get(panel=world.counter)
    assert revision.number == 1 and revision.source == COUNTER and revision.author is None
    assert owner.get(f"{PANEL}/").json()["revision"] == 1


def test_patch_migrates_the_state_and_reports_it(world: World, owner: Any) -> None:
    panel_url = "/api/v1/workspaces/ws/panels/typed"
    create_panel(world.workspace, TYPED, "typed")
    run(owner, "fill", panel_url)
    response = patch(owner, {"source": RETYPED, "message": "retype"}, panel_url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["revision"] == 2 and body["created"] is True
    assert body["migration"] == {"added": ["fresh"], "removed": ["gone"], "reset": ["flag"],
                                 "converted": ["label", "text"]}
    assert body["state"] == {"keep": 41, "fresh": True, "label": "3", "flag": False, "text": 2.5}
    panel = Panel.objects.get(panel_id="typed")
    assert panel.state == body["state"] and panel.state_version == body["stateVersion"]
    assert panel.title == "Retyped"
    revision = PanelRevision.objects.get(panel=panel, number=2)
    assert revision.message == "retype" and revision.author == world.owner


def test_patch_keeps_values_and_recomputes(world: World, owner: Any) -> None:
    run(owner, "increment")
    edited = COUNTER.replace('title="Counter"', 'title="Renamed"').replace("$state.count * 2", "$state.count * 3")
    body = patch(owner, {"source": edited, "baseRevision": 1}).json()
    assert body["state"] == {"count": 1, "double": 3}
    assert body["migration"] == {"added": [], "removed": [], "reset": [], "converted": []}
    detail = owner.get(f"{PANEL}/").json()
    assert detail["title"] == "Renamed" and detail["revision"] == 2


def test_the_mount_handler_does_not_run_again_but_update_does(world: World, owner: Any) -> None:
    mounting = COUNTER.replace(
        "</Logic>", '  <Lifecycle on="mount"><Handler>$state.count = 10;</Handler></Lifecycle>\n  </Logic>')
    create_panel(world.workspace, mounting, "mounting")
    url = "/api/v1/workspaces/ws/panels/mounting"
    edited = mounting.replace('title="Counter"', 'title="Edited"')
    assert patch(owner, {"source": edited}, url).json()["state"]["count"] == 10
    hooked = WITH_UPDATE_HOOK.replace("</Logic>", '  <Lifecycle on="mount"><Handler>$state.count = 10;</Handler>'
                                                  '</Lifecycle>\n  </Logic>')
    body = patch(owner, {"source": hooked}, url).json()
    assert body["state"]["count"] == 110 and body["revision"] == 3


def test_identical_source_stores_nothing(world: World, owner: Any) -> None:
    before = Panel.objects.get(pk=world.counter.pk).state_version
    body = patch(owner, {"source": COUNTER}).json()
    assert body["revision"] == 1 and body["created"] is False and body["stateVersion"] == before
    assert PanelRevision.objects.filter(panel=world.counter).count() == 1


def test_invalid_nxml_changes_nothing(world: World, owner: Any) -> None:
    broken = COUNTER.replace("<Metric", "<Metrik")
    error = assert_error(patch(owner, {"source": broken}), 400, "INVALID_NXML")
    (first, *_) = error["details"]["errors"]
    assert first["line"] > 1 and first["column"] >= 1
    panel = Panel.objects.get(pk=world.counter.pk)
    assert panel.source == COUNTER and PanelRevision.objects.filter(panel=panel).count() == 1


def test_stale_base_revision_is_a_conflict(world: World, owner: Any, api_client_for: Any) -> None:
    editor = api_client_for(world.editor)
    first = COUNTER.replace('title="Counter"', 'title="First"')
    assert patch(editor, {"source": first, "baseRevision": 1}).status_code == 200
    second = COUNTER.replace('title="Counter"', 'title="Second"')
    error = assert_error(patch(owner, {"source": second, "baseRevision": 1}), 409, "REVISION_CONFLICT")
    assert error["details"] == {"currentRevision": 2, "baseRevision": 1}
    assert Panel.objects.get(pk=world.counter.pk).title == "First"


@pytest.mark.parametrize("body", [
    {},
    {"source": 5},
    {"source": COUNTER, "baseRevision": 0},
    {"source": COUNTER, "baseRevision": "one"},
    {"source": COUNTER, "message": "m" * 501},
    {"source": COUNTER, "sauce": "typo"},
])
def test_malformed_updates_are_refused(world: World, owner: Any, body: dict[str, Any]) -> None:
    assert_error(patch(owner, body), 400, "INVALID_REQUEST")


def test_viewers_may_not_edit_or_restore(world: World, api_client_for: Any) -> None:
    viewer = api_client_for(world.viewer)
    assert_error(patch(viewer, {"source": COUNTER.replace("Counter", "Mine")}), 403, "FORBIDDEN")
    assert_error(viewer.post(f"{PANEL}/revisions/1/restore/", {}, format="json"), 403, "FORBIDDEN")
    assert viewer.get(f"{PANEL}/revisions/").status_code == 200
    outsider = api_client_for(world.outsider)
    assert_error(patch(outsider, {"source": COUNTER}), 404, "NOT_FOUND")


def test_revisions_list_detail_and_restore(world: World, owner: Any) -> None:
    for title in ("Two", "Three"):
        patch(owner, {"source": COUNTER.replace('title="Counter"', f'title="{title}"'), "message": title})
    listing = owner.get(f"{PANEL}/revisions/").json()
    assert listing["count"] == 3
    assert [row["number"] for row in listing["results"]] == [3, 2, 1]
    assert listing["results"][0]["author"] == "olivia" and listing["results"][0]["message"] == "Three"
    assert "source" not in listing["results"][0]
    assert owner.get(f"{PANEL}/revisions/?page_size=1&page=2").json()["results"][0]["number"] == 2
    detail = owner.get(f"{PANEL}/revisions/1/").json()
    assert detail["source"] == COUNTER and len(detail["contentHash"]) == 64
    assert_error(owner.get(f"{PANEL}/revisions/9/"), 404, "NOT_FOUND")

    restored = owner.post(f"{PANEL}/revisions/1/restore/", {}, format="json")
    assert restored.status_code == 200, restored.content
    assert restored.json()["revision"] == 4
    assert owner.get(f"{PANEL}/").json()["title"] == "Counter"
    assert PanelRevision.objects.get(panel=world.counter, number=4).message == "Restored revision 1"
    assert_error(owner.post(f"{PANEL}/revisions/9/restore/", {}, format="json"), 404, "NOT_FOUND")


def test_a_panel_without_revisions_gets_its_source_as_revision_one(world: World, owner: Any) -> None:
    PanelRevision.objects.filter(panel=world.counter).delete()
    body = patch(owner, {"source": COUNTER.replace('title="Counter"', 'title="Later"')}).json()
    assert body["revision"] == 2
    assert PanelRevision.objects.get(panel=world.counter, number=1).source == COUNTER


def test_two_saves_from_the_same_revision_never_both_win(world: World) -> None:
    import asyncio

    from asgiref.sync import async_to_sync

    from workspaces.services.panels import ServiceError, update_source

    async def both() -> list[Any]:
        saves = [update_source(world.counter, COUNTER.replace('title="Counter"', f'title="{title}"'),
                               actor=name, base_revision=1)
                 for title, name in (("Left", "olivia"), ("Right", "eddie"))]
        return await asyncio.gather(*saves, return_exceptions=True)

    outcomes = async_to_sync(both)()
    refused = [o for o in outcomes if isinstance(o, ServiceError)]
    stored = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(stored) == 1 and len(refused) == 1, outcomes
    assert refused[0].code == "REVISION_CONFLICT"
    panel = Panel.objects.get(pk=world.counter.pk)
    assert panel.title == stored[0].panel.title and stored[0].revision == 2
    assert PanelRevision.objects.filter(panel=panel).count() == 2
