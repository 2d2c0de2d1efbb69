"""The authoring pages through Django's test client: who sees which action, and what each page does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from workspaces.editing import completion_schema, diff_lines, preview, sample_source

SOURCE = """<NexusPanel id="votes" title="Votes">
  <Data>
    <State name="count" type="number" default="0" />
    <State name="label" type="string" default="Yes" />
  </Data>
  <Logic>
    <Tool name="vote" description="Add one"><Handler>$state.count = $state.count + 1;</Handler></Tool>
  </Logic>
  <View>
    <Metric label="{$state.label}" value="{$state.count}" />
    <Button label="Vote" trigger="vote" />
  </View>
</NexusPanel>
"""

ACTIONS = ("/edit/", "/history/", "/duplicate/", "/delete/")


@pytest.fixture
def team(make_user: Any, make_workspace: Any) -> dict[str, Any]:
    owner, editor, viewer = make_user("olive"), make_user("eddie"), make_user("vera")
    acme = make_workspace("acme", {owner: "owner", editor: "editor", viewer: "viewer"})
    return {"owner": owner, "editor": editor, "viewer": viewer, "workspace": acme}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _create(workspace: Any, panel_id: str = "votes", source: str = SOURCE) -> Any:
    from workspaces.services import panels as panel_service

    panel, _ = async_to_sync(panel_service.create_panel)(workspace, source, panel_id=panel_id)
    return panel


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ["owner", "editor"])
def test_editors_and_owners_see_every_action(team: dict[str, Any], role: str) -> None:
    _create(team["workspace"])
    client = _client(team[role])
    listing = client.get("/workspaces/acme/").content.decode()
    assert 'href="/workspaces/acme/panels/new/"' in listing and "New panel" in listing
    page = client.get("/workspaces/acme/panels/votes/").content.decode()
    for action in ACTIONS:
        assert f'/workspaces/acme/panels/votes{action}"' in page, action
    assert ">Edit</a>" in page and ">Delete</a>" in page and ">Duplicate</button>" in page


@pytest.mark.django_db(transaction=True)
def test_a_viewer_sees_no_action_and_may_use_none(team: dict[str, Any]) -> None:
    _create(team["workspace"])
    client = _client(team["viewer"])
    assert "New panel" not in client.get("/workspaces/acme/").content.decode()
    page = client.get("/workspaces/acme/panels/votes/").content.decode()
    for action in ACTIONS:
        assert f"/workspaces/acme/panels/votes{action}" not in page, action
    assert ">Edit<" not in page and ">Delete<" not in page
    assert client.get("/workspaces/acme/panels/new/").status_code == 403
    assert client.get("/workspaces/acme/panels/votes/edit/").status_code == 403
    assert client.post("/workspaces/acme/panels/votes/duplicate/").status_code == 403
    assert client.get("/workspaces/acme/panels/votes/delete/").status_code == 403
    assert client.post("/workspaces/acme/panels/votes/delete/").status_code == 403
    assert client.post("/workspaces/acme/editor/preview/", json.dumps({"source": SOURCE}),
                       content_type="application/json").status_code == 403
    history = client.get("/workspaces/acme/panels/votes/history/").content.decode()
    assert "Revision 1" in history and "Restore revision" not in history
    from workspaces.models import Panel

    assert Panel.objects.filter(panel_id="votes").count() == 1


@pytest.mark.django_db(transaction=True)
def test_strangers_and_anonymous_visitors_learn_nothing(team: dict[str, Any], make_user: Any) -> None:
    _create(team["workspace"])
    stranger = _client(make_user("mallory"))
    for path in ["/workspaces/acme/panels/new/", "/workspaces/acme/panels/votes/edit/",
                 "/workspaces/acme/panels/votes/history/", "/workspaces/acme/panels/votes/delete/"]:
        assert stranger.get(path, HTTP_ACCEPT="text/html").status_code == 404, path
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path


def _page_data(body: str, element_id: str) -> Any:
    start = body.index(f'<script id="{element_id}" type="application/json">') + len(
        f'<script id="{element_id}" type="application/json">')
    return json.loads(body[start:body.index("</script>", start)])


@pytest.mark.django_db(transaction=True)
def test_the_new_page_starts_blank_or_from_a_sample(team: dict[str, Any]) -> None:
    client = _client(team["editor"])
    blank = client.get("/workspaces/acme/panels/new/")
    assert blank.status_code == 200
    body = blank.content.decode()
    config = _page_data(body, "nexus-editor-data")
    assert config["mode"] == "new" and config["source"] == sample_source("blank")
    assert config["validateUrl"] == "/api/v1/workspaces/acme/panels/validate/"
    assert config["panelsUrl"] == "/api/v1/workspaces/acme/panels/" and config["csrfToken"]
    assert 'id="nx-editor-id"' in body and "codemirror" not in body  # the bundle is imported by editor.js
    assert 'href="/docs/authoring/#editor"' in body
    guide = client.get("/docs/authoring/")
    assert guide.status_code == 200 and '<h2 id="editor">Editor</h2>' in guide.content.decode()
    schema = _page_data(body, "nexus-editor-schema")
    assert {"name", "top", "children", "attributes"} <= set(schema["elements"][0])
    counter = _page_data(client.get("/workspaces/acme/panels/new/?sample=counter").content.decode(),
                         "nexus-editor-data")
    assert 'id="counter"' in counter["source"] and counter["sample"] == "counter"
    unknown = _page_data(client.get("/workspaces/acme/panels/new/?sample=../../etc").content.decode(),
                         "nexus-editor-data")
    assert unknown["source"] == sample_source("blank")


@pytest.mark.django_db(transaction=True)
def test_the_edit_page_holds_the_source_its_revision_and_where_to_save(team: dict[str, Any]) -> None:
    _create(team["workspace"])
    response = _client(team["owner"]).get("/workspaces/acme/panels/votes/edit/")
    assert response.status_code == 200
    config = _page_data(response.content.decode(), "nexus-editor-data")
    assert config["mode"] == "edit" and config["source"] == SOURCE and config["panelId"] == "votes"
    assert config["revision"] == 1
    assert config["saveUrl"] == "/api/v1/workspaces/acme/panels/votes/"
    assert config["panelUrl"] == "/workspaces/acme/panels/votes/"
    assert _client(team["owner"]).get("/workspaces/acme/panels/nothing/edit/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_preview_answers_the_view_and_state_or_the_located_errors(team: dict[str, Any]) -> None:
    from workspaces.models import Panel

    _create(team["workspace"])
    Panel.objects.filter(panel_id="votes").update(state={"count": 5, "label": "Yes"})
    client = _client(team["editor"])

    def post(body: Any) -> Any:
        return client.post("/workspaces/acme/editor/preview/", json.dumps(body), content_type="application/json")

    fresh = post({"source": SOURCE}).json()
    assert fresh["valid"] and fresh["title"] == "Votes" and fresh["state"] == {"count": 0, "label": "Yes"}
    assert [child["type"] for child in fresh["view"]["children"]] == ["Metric", "Button"]
    changed = SOURCE.replace('name="label" type="string" default="Yes"', 'name="label" type="number" default="1"')
    current = post({"source": changed, "panelId": "votes"}).json()
    assert current["state"] == {"count": 5, "label": 1}, "a key whose type changed shows its new default"
    computed = SOURCE.replace("  </Data>", '    <Computed name="double" value="$state.count * 2" />\n  </Data>')
    assert post({"source": computed, "panelId": "votes"}).json()["state"]["double"] == 10
    broken = post({"source": SOURCE.replace("<Button ", "<Buton ")}).json()
    assert broken["valid"] is False
    assert [(e["code"], e["line"]) for e in broken["errors"]] == [("UNKNOWN_ELEMENT", 11)]
    assert client.post("/workspaces/acme/editor/preview/", "not json",
                       content_type="application/json").status_code == 400
    assert client.get("/workspaces/acme/editor/preview/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_history_lists_revisions_newest_first_with_diffs(team: dict[str, Any]) -> None:
    from workspaces.models import PanelRevision

    panel = _create(team["workspace"])
    second = SOURCE.replace('<Button label="Vote"', '<Button label="Vote again"')
    # A stored revision as the revision service leaves it; the page only reads them.
    PanelRevision.objects.get_or_create(panel=panel, number=1, defaults={"source": SOURCE, "content_hash": "a"})
    PanelRevision.objects.create(panel=panel, number=2, source=second, content_hash="b", message="Louder <b>",
                                 author=team["editor"])
    body = _client(team["owner"]).get("/workspaces/acme/panels/votes/history/").content.decode()
    assert body.index("Revision 2") < body.index("Revision 1")
    assert 'nx-diff-line--remove">-    &lt;Button label=&quot;Vote&quot;' in body
    assert 'nx-diff-line--add">+    &lt;Button label=&quot;Vote again&quot;' in body
    assert "Louder &lt;b&gt;" in body and "eddie" in body
    assert "Restore revision 1" in body and "Restore revision 2" not in body, "the current one is not restorable"
    assert 'action="/workspaces/acme/panels/votes/history/1/restore/"' in body


@pytest.mark.django_db(transaction=True)
def test_restore_makes_a_new_revision_from_an_old_one(team: dict[str, Any]) -> None:
    from workspaces.models import Panel
    from workspaces.services import panels as panel_service

    panel = _create(team["workspace"])
    second = SOURCE.replace('<Button label="Vote"', '<Button label="Vote again"')
    async_to_sync(panel_service.update_source)(panel, second, actor="eddie")
    viewer = _client(team["viewer"])
    assert viewer.post("/workspaces/acme/panels/votes/history/1/restore/").status_code == 403
    assert Panel.objects.get(panel_id="votes").source == second
    client = _client(team["editor"])
    missing = client.post("/workspaces/acme/panels/votes/history/9/restore/")
    assert missing.status_code == 404 and "has no revision 9" in missing.content.decode()
    response = client.post("/workspaces/acme/panels/votes/history/1/restore/")
    assert response.status_code == 302 and response["Location"] == "/workspaces/acme/panels/votes/"
    restored = Panel.objects.get(panel_id="votes")
    assert restored.source == SOURCE
    assert list(restored.revisions.values_list("number", flat=True)) == [3, 2, 1]
    assert restored.revisions.first().message == "Restored revision 1"
    assert client.get("/workspaces/acme/panels/votes/history/1/restore/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_duplicate_makes_a_fresh_copy_and_opens_it(team: dict[str, Any]) -> None:
    from workspaces.models import Panel

    _create(team["workspace"])
    Panel.objects.filter(panel_id="votes").update(state={"count": 9, "label": "Yes"})
    response = _client(team["editor"]).post("/workspaces/acme/panels/votes/duplicate/")
    assert response.status_code == 302
    copy = Panel.objects.exclude(panel_id="votes").get(workspace__slug="acme")
    assert copy.panel_id.startswith("votes-") and copy.source == SOURCE and copy.state["count"] == 0
    assert response["Location"] == f"/workspaces/acme/panels/{copy.panel_id}/"
    assert _client(team["editor"]).get("/workspaces/acme/panels/votes/duplicate/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_duplicate_over_the_panel_limit_says_why(team: dict[str, Any]) -> None:
    from workspaces.models import Panel, Workspace

    _create(team["workspace"])
    Workspace.objects.filter(slug="acme").update(max_panels=1)
    response = _client(team["owner"]).post("/workspaces/acme/panels/votes/duplicate/")
    assert response.status_code == 409 and "already has 1 panels" in response.content.decode()
    assert Panel.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_delete_asks_first_then_deletes(team: dict[str, Any]) -> None:
    from workspaces.models import Panel

    _create(team["workspace"])
    client = _client(team["editor"])
    confirm = client.get("/workspaces/acme/panels/votes/delete/")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert Panel.objects.filter(panel_id="votes").exists(), "asking deletes nothing"
    response = client.post("/workspaces/acme/panels/votes/delete/")
    assert response.status_code == 302 and response["Location"] == "/workspaces/acme/"
    assert not Panel.objects.filter(panel_id="votes").exists()


def test_completion_schema_names_every_element_with_its_attributes() -> None:
    elements = {spec["name"]: spec for spec in completion_schema()["elements"]}
    assert elements["NexusPanel"]["top"] is True and "View" in elements["NexusPanel"]["children"]
    button = {attr["name"]: attr for attr in elements["Button"]["attributes"]}
    assert {"label", "trigger", "variant", "disabled"} <= set(button)
    assert button["variant"]["values"] == ["primary", "secondary", "danger", "ghost"]
    assert button["disabled"]["values"] == ["true", "false"]
    assert "Button" in elements["Layout"]["children"] and elements["Button"]["children"] == []
    state_type = next(a for a in elements["State"]["attributes"] if a["name"] == "type")
    assert "number" in state_type["values"]


def test_diff_lines_mark_added_removed_and_context() -> None:
    lines = diff_lines("a\nb\nc\n", "a\nB\nc\n")
    assert [(line.kind, line.text) for line in lines] == [
        ("hunk", "@@ -1,3 +1,3 @@"), ("same", " a"), ("remove", "-b"), ("add", "+B"), ("same", " c")]
    assert diff_lines("same", "same") == []


def test_preview_of_an_empty_source() -> None:
    assert preview("  ", "acme")["valid"] is False and preview(None, "acme")["valid"] is False
