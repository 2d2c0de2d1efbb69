"""The admin console, driven through a real login: panels, their form and actions, the audit trail."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from tests.api.conftest import COUNTER, TODO, create_panel
from workspaces.models import AuditOutcome, AuditRecord, Panel, PanelStatus
from workspaces.services import activity as activity_service
from workspaces.services import panels as panel_service

CHANGELIST = "/admin/workspaces/panel/"
MOUNTS_TO_100 = COUNTER.replace(
    "</Logic>", '  <Lifecycle on="mount"><Handler>$state.count = 100;</Handler></Lifecycle>\n  </Logic>'
)


@pytest.fixture
def workspace(make_workspace: Any) -> Any:
    return make_workspace("lab")


def panel(panel_id: str) -> Panel:
    return Panel.objects.select_related("workspace").get(panel_id=panel_id)


def act(client: Client, action: str, *panels: Panel) -> Any:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [p.pk for p in panels]}, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_login_is_required(db: None) -> None:
    response = Client().get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_changelist_columns_filters_and_search(admin_client: Client, workspace: Any, make_workspace: Any) -> None:
    create_panel(workspace, COUNTER, "counter")
    create_panel(make_workspace("other"), TODO, "todo")
    async_to_sync(panel_service.stop_panel)(panel("todo"))
    page = admin_client.get(CHANGELIST).content.decode()
    for header in ("Panel id", "Workspace", "Title", "Status", "State version", "Last activity"):
        assert header in page
    assert "counter" in page and "todo" in page
    running = admin_client.get(CHANGELIST, {"status__exact": "running"}).content.decode()
    assert "Counter" in running and "Tasks" not in running
    only_lab = admin_client.get(CHANGELIST, {"workspace__id__exact": workspace.pk}).content.decode()
    assert "Counter" in only_lab and "Tasks" not in only_lab
    found = admin_client.get(CHANGELIST, {"q": "task"}).content.decode()
    assert "Tasks" in found and "Counter" not in found


def test_change_form_shows_pretty_state(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    page = admin_client.get(f"{CHANGELIST}{created.pk}/change/").content.decode()
    assert '<pre class="nexus-json"' in page
    assert "&quot;count&quot;: 0" in page and "&quot;double&quot;: 0" in page
    # The state is shown, not edited.
    assert 'name="state"' not in page and 'name="source"' in page


def test_form_shows_nxml_errors_by_line_and_stores_nothing(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    broken = COUNTER.replace('default="0"', 'default="zero"').replace('trigger="reset"', 'trigger="nothing"')
    response = admin_client.post(f"{CHANGELIST}{created.pk}/change/", {"source": broken})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["source"]
    assert len(errors) == 2
    for error in errors:
        assert re.match(r"line \d+, column \d+: [A-Z_]+ ", error), error
    page = response.content.decode()
    assert "INVALID_DEFAULT" in page and "UNKNOWN_TRIGGER" in page
    assert panel("counter").source == COUNTER


def test_editing_the_source_goes_through_the_service(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    renamed = COUNTER.replace('title="Counter"', 'title="Tally"')
    response = admin_client.post(f"{CHANGELIST}{created.pk}/change/", {"source": renamed})
    assert response.status_code == 302
    stored = panel("counter")
    # Only the title changed: the state (and its version) stay; the edit is revision 2.
    assert (stored.title, stored.source, stored.state_version) == ("Tally", renamed, 0)
    revision = stored.revisions.get(number=2)
    assert (revision.message, revision.author.username, revision.source) == ("Edited in the admin", "root", renamed)


def test_adding_a_panel_runs_mount(admin_client: Client, workspace: Any) -> None:
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"workspace": workspace.pk, "panel_id": "fresh", "source": MOUNTS_TO_100, "extension_config": "{}"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    stored = panel("fresh")
    assert stored.status == PanelStatus.RUNNING and stored.state == {"count": 100, "double": 200}


def test_add_form_refuses_duplicates_and_bad_nxml(admin_client: Client, workspace: Any) -> None:
    create_panel(workspace, COUNTER, "counter")
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"workspace": workspace.pk, "panel_id": "counter", "source": "<NexusPanel", "extension_config": "{}"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "source" in errors and re.match(r"line \d+, column \d+: XML_SYNTAX", errors["source"][0])
    assert "__all__" in errors or "panel_id" in errors
    assert Panel.objects.count() == 1


def test_action_validate(admin_client: Client, workspace: Any) -> None:
    good = create_panel(workspace, COUNTER, "good")
    bad = create_panel(workspace, COUNTER, "bad")
    Panel.objects.filter(pk=bad.pk).update(source=COUNTER.replace('trigger="reset"', 'trigger="gone"'))
    shown = messages_of(act(admin_client, "validate_panels", good, bad))
    assert any(re.search(r"lab/bad: line \d+, column \d+: UNKNOWN_TRIGGER", text) for text in shown), shown
    assert "Validated 1 panel(s)." in shown


def test_action_reset_state(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    async_to_sync(panel_service.run_tool)(created, "increment", {"by": 7})
    assert panel("counter").state == {"count": 7, "double": 14}
    assert "Reset 1 panel(s)." in messages_of(act(admin_client, "reset_state", created))
    assert panel("counter").state == {"count": 0, "double": 0}


def test_action_remount(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, MOUNTS_TO_100, "counter")
    async_to_sync(panel_service.reset_state)(created)
    assert panel("counter").state["count"] == 0
    assert "Mounted 1 panel(s)." in messages_of(act(admin_client, "remount", created))
    assert panel("counter").state == {"count": 100, "double": 200}


def test_action_stop(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    assert "Stopped 1 panel(s)." in messages_of(act(admin_client, "stop", created))
    assert panel("counter").status == PanelStatus.STOPPED


def test_action_export_one_panel(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    response = act(admin_client, "export_nxml", created)
    assert response["Content-Disposition"] == 'attachment; filename="counter.nxml"'
    assert response.content.decode() == COUNTER


def test_action_export_several_panels_as_zip(admin_client: Client, workspace: Any) -> None:
    panels = [create_panel(workspace, COUNTER, "counter"), create_panel(workspace, TODO, "todo")]
    response = act(admin_client, "export_nxml", *panels)
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["lab/counter.nxml", "lab/todo.nxml"]
        assert archive.read("lab/todo.nxml").decode() == TODO


def test_delete_goes_through_the_service(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    response = admin_client.post(f"{CHANGELIST}{created.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Panel.objects.filter(pk=created.pk).exists()


def test_workspace_page_has_members_inline(admin_client: Client, workspace: Any, make_user: Any) -> None:
    from workspaces.models import Membership

    Membership.objects.create(workspace=workspace, user=make_user("mia"), role="editor")
    page = admin_client.get(f"/admin/workspaces/workspace/{workspace.pk}/change/").content.decode()
    assert "memberships-TOTAL_FORMS" in page and 'value="editor" selected' in page


def test_audit_records_are_read_only(admin_client: Client) -> None:
    record = AuditRecord.record(workspace="lab", panel="monitor", handler="checkHealth", user="alice",
                                action="ext.call", resource="http.get", outcome=AuditOutcome.DENIED,
                                reason="host is not allowed")
    base = "/admin/workspaces/auditrecord/"
    listing = admin_client.get(base)
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "http.get" in page and "checkHealth" in page
    assert f"{base}add/" not in page
    assert admin_client.get(f"{base}add/").status_code == 403
    detail = admin_client.get(f"{base}{record.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert admin_client.post(f"{base}{record.pk}/change/", {"reason": "edited"}).status_code == 403
    assert admin_client.post(f"{base}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditRecord.objects.get(pk=record.pk).reason == "host is not allowed"


def test_panels_link_to_their_live_page_and_recent_runs(admin_client: Client, workspace: Any) -> None:
    created = create_panel(workspace, COUNTER, "counter")
    async_to_sync(panel_service.run_tool)(created, "increment", {"by": 2}, actor="root")
    assert 'href="/workspaces/lab/panels/counter/"' in admin_client.get(CHANGELIST).content.decode()
    page = admin_client.get(f"{CHANGELIST}{created.pk}/change/").content.decode()
    assert 'href="/workspaces/lab/panels/counter/"' in page
    assert "tool increment · success" in page
    assert f"/admin/workspaces/panelrun/?panel__id__exact={created.pk}" in page


def test_runs_are_read_only_with_their_log(admin_client: Client, workspace: Any) -> None:
    source = COUNTER.replace("$emit('changed', $state.count);", "$log.warn('now', $state.count);")
    created = create_panel(workspace, source, "counter")
    async_to_sync(panel_service.run_tool)(created, "increment", {}, actor="root")
    base = "/admin/workspaces/panelrun/"
    listing = admin_client.get(base, {"panel__id__exact": created.pk}).content.decode()
    assert "increment" in listing and f"{base}add/" not in listing
    (run,) = activity_service.runs_of(created)
    detail = admin_client.get(f"{base}{run.pk}/change/").content.decode()
    assert "[warn] now 1" in detail and 'name="_save"' not in detail
    assert admin_client.post(f"{base}{run.pk}/change/", {"handler": "x"}).status_code == 403
