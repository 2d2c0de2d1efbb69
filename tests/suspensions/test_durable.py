"""Durable suspensions on the database the suite runs on (SQLite, or PostgreSQL with DATABASE_URL):
rows stored and removed with their segments, takeovers, INTERRUPTED, TIMEOUT, the workspace cap,
a lost race, the hand-over, and the admin's cancel."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from runtime import metrics
from tests.suspensions.conftest import GETTING, MONITOR, POSTING, HeldService, create_panel, start_only
from workspaces.models import Panel, PanelRun, PanelSuspension
from workspaces.services import activity, suspensions
from workspaces.services.panels import run_tool
from workspaces.services.panels.segments import run_segment
from workspaces.services.process_identity import process_identity
from workspaces.services.sandbox import get_runtime
from workspaces.services.suspension_loop import SuspensionLoop

DEAD = "gone-host:1:000000"


def state_of(panel: Any) -> dict[str, Any]:
    return dict(Panel.objects.get(pk=panel.pk).state)


def orphan(row_pk: int, **changes: Any) -> None:
    """Make the row look like one whose owner died: another owner, an expired lease."""
    past = timezone.now() - timedelta(seconds=5)
    PanelSuspension.objects.filter(pk=row_pk).update(owner=DEAD, lease_until=past, **changes)


def take_over_all(importer: Any = None) -> int:
    """One pass of a fresh loop; waits for the handlers it took over to finish. Returns how many."""

    async def one_pass() -> int:
        loop = SuspensionLoop() if importer is None else SuspensionLoop(importer=importer)
        tasks = await loop.step()
        for task in tasks:
            await task
        return len(tasks)

    return int(async_to_sync(one_pass)())


def test_a_waiting_handler_is_a_row_until_it_finishes(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, MONITOR, "monitor", service)
    Panel.objects.filter(pk=panel.pk).update(state={**panel.state, "target": "/health"})
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(run=async_to_sync(run_tool)(panel, "checkHealth")))
    worker.start()
    deadline = time.monotonic() + 20
    while not PanelSuspension.objects.filter(panel=panel).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    row = PanelSuspension.objects.get(panel=panel)
    assert (row.owner, row.handler, row.extension, row.method) == (process_identity(), "checkHealth", "http", "get")
    assert len(bytes(row.blob)) > 0 and row.lease_until > timezone.now() and row.deadline > timezone.now()
    assert state_of(panel)["loading"] is True  # the segment before the await is committed with the row
    service.release.set()
    worker.join(30)
    assert outcome["run"].status == "success", outcome
    assert not PanelSuspension.objects.filter(panel=panel).exists()
    assert state_of(panel)["status"] == "online" and state_of(panel)["loading"] is False


def test_an_expired_lease_is_taken_over_and_a_safe_call_made_again(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, MONITOR, "monitor", service)
    stopped = start_only(panel, "checkHealth")
    row = PanelSuspension.objects.get(panel=panel)
    get_runtime().cancel(stopped.suspension_id)  # the dead process's memory is gone with it
    orphan(row.pk)
    service.release.set()
    before = metrics.SUSPENSION_TAKEOVERS_TOTAL._value.get()
    assert take_over_all() == 1
    activity.flush()
    state = state_of(panel)
    assert (state["status"], state["loading"], len(state["history"])) == ("online", False, 1)
    assert not PanelSuspension.objects.filter(pk=row.pk).exists()
    assert metrics.SUSPENSION_TAKEOVERS_TOTAL._value.get() == before + 1
    assert PanelRun.objects.filter(panel=panel, handler="checkHealth", status="success").count() == 1
    assert take_over_all() == 0  # nothing left to take


def test_a_call_not_safe_to_repeat_resumes_with_interrupted(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, POSTING, "poster", service)
    stopped = start_only(panel)
    get_runtime().cancel(stopped.suspension_id)
    orphan(PanelSuspension.objects.get(panel=panel).pk)
    service.release.set()
    assert take_over_all() == 1
    state = state_of(panel)
    assert (state["code"], state["result"], state["loading"]) == ("INTERRUPTED", "", False)
    assert service.requests == []  # the POST was not sent again
    assert not PanelSuspension.objects.filter(panel=panel).exists()


def test_an_idempotency_key_makes_a_post_safe_to_repeat(workspace: Any, service: HeldService) -> None:
    source = POSTING.replace("{json: {n: 1}}", "{n: 1}, {idempotencyKey: 'order-1'}")
    panel = create_panel(workspace, source, "poster", service)
    stopped = start_only(panel)
    get_runtime().cancel(stopped.suspension_id)
    orphan(PanelSuspension.objects.get(panel=panel).pk)
    service.release.set()
    assert take_over_all() == 1
    assert state_of(panel)["result"] == "answered"
    assert service.requests == ["POST /orders key=order-1"]


def test_a_passed_deadline_resumes_with_timeout(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    get_runtime().cancel(stopped.suspension_id)
    orphan(PanelSuspension.objects.get(panel=panel).pk, deadline=timezone.now() - timedelta(seconds=1))
    assert take_over_all() == 1
    assert state_of(panel)["code"] == "TIMEOUT" and state_of(panel)["loading"] is False
    assert service.requests == []
    assert not PanelSuspension.objects.exists()


def test_a_resume_that_lost_its_row_does_nothing(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    PanelSuspension.objects.filter(panel=panel).update(generation=7)  # another process took it over
    version = Panel.objects.get(pk=panel.pk).state_version
    resume = {"suspension_id": stopped.suspension_id, "ok": True, "value": {"status": 200}}
    with pytest.raises(suspensions.Lost):
        async_to_sync(run_segment)(stopped.run, resume)
    assert Panel.objects.get(pk=panel.pk).state_version == version
    assert state_of(panel)["result"] == ""
    assert get_runtime().cancel(stopped.suspension_id) is False  # the local copy was dropped
    assert PanelSuspension.objects.filter(panel=panel).exists()


def test_over_the_workspace_cap_the_await_throws_resource_limit(
    workspace: Any, service: HeldService, settings: Any
) -> None:
    settings.NEXUS = dataclasses.replace(settings.NEXUS, WORKSPACE_MAX_SUSPENDED=1)
    waiting = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(waiting)
    caller = create_panel(workspace, POSTING, "poster", service)
    outcome = async_to_sync(run_tool)(caller, "call")
    assert outcome.status == "success"
    assert state_of(caller)["code"] == "RESOURCE_LIMIT" and state_of(caller)["loading"] is False
    assert service.requests == []
    assert PanelSuspension.objects.count() == 1
    get_runtime().cancel(stopped.suspension_id)


def test_hand_over_lets_the_leases_of_this_process_run_out(workspace: Any, service: HeldService) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    assert suspensions.renew_leases() == 1
    assert suspensions.expired_rows() == []
    assert suspensions.hand_over() == 1
    assert suspensions.expired_rows() == [PanelSuspension.objects.get(panel=panel).pk]
    assert suspensions.counts() == {"local": 0, "remote": 0, "expired": 1}
    get_runtime().cancel(stopped.suspension_id)


def test_a_blob_that_cannot_be_imported_drops_its_row(workspace: Any, service: HeldService) -> None:
    from runtime.errors import CodedError, ErrorCode

    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    get_runtime().cancel(stopped.suspension_id)
    orphan(PanelSuspension.objects.get(panel=panel).pk)

    def refuse(blob: bytes) -> str:
        raise CodedError(ErrorCode.INVALID_ARGS, "from another guest build")

    assert take_over_all(importer=refuse) == 1
    assert not PanelSuspension.objects.exists()


def test_the_admin_cancel_resumes_with_an_error(workspace: Any, service: HeldService, client: Any,
                                                admin_user: Any) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    row = PanelSuspension.objects.get(panel=panel)
    client.force_login(admin_user)
    page = client.get(f"/admin/workspaces/panel/{panel.pk}/change/")
    assert page.status_code == 200 and b"call \xc2\xb7 waits on http.get" in page.content
    assert f"panelsuspension/?panel__id__exact={panel.pk}".encode() in page.content
    response = client.post("/admin/workspaces/panelsuspension/", {"action": "cancel", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert take_over_all() == 1
    assert state_of(panel)["code"] == "INTERRUPTED" and state_of(panel)["loading"] is False
    assert not PanelSuspension.objects.exists()
    assert get_runtime().cancel(stopped.suspension_id) is True  # the owner's copy never ran again


def test_panel_detail_and_health_count_waiting_handlers(workspace: Any, service: HeldService,
                                                        api_client_for: Any) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    stopped = start_only(panel)
    owner = workspace.memberships.get().user
    body = api_client_for(owner).get("/api/v1/workspaces/ws/panels/getter/").json()
    assert body["waitingHandlers"] == 1
    health = api_client_for(owner).get("/health").json()
    assert health["suspensions"] == {"local": 1, "remote": 0, "expired": 0}
    assert metrics.SUSPENSIONS.labels("local")._value.get() == 1
    get_runtime().cancel(stopped.suspension_id)


def test_a_second_await_updates_the_row_and_the_end_deletes_it(workspace: Any, service: HeldService) -> None:
    source = GETTING.replace("await $ext.http.get('/status');",
                             "await $ext.http.get('/status'); await $ext.http.post('/log', {n: 2});")
    panel = create_panel(workspace, source, "getter", service)
    stopped = start_only(panel)
    first = PanelSuspension.objects.get(panel=panel)
    assert first.method == "get"
    resume = {"suspension_id": stopped.suspension_id, "ok": True, "value": {"status": 200}}
    result, _, failure = async_to_sync(run_segment)(stopped.run, resume)
    assert failure is None and result.status == "suspended"
    second = PanelSuspension.objects.get(panel=panel)
    assert (second.pk, second.method, second.call_args) == (first.pk, "post", ["/log", {"n": 2}])
    assert bytes(second.blob) != bytes(first.blob)
    assert result.suspension is not None
    resume = {"suspension_id": result.suspension["suspension_id"], "ok": True, "value": {"status": 201}}
    result, _, failure = async_to_sync(run_segment)(stopped.run, resume)
    assert failure is None and result.status == "success"
    assert not PanelSuspension.objects.exists()
    assert state_of(panel)["result"] == "answered"


def test_a_handler_that_awaits_while_its_process_hands_over_goes_to_another(
    workspace: Any, service: HeldService
) -> None:
    panel = create_panel(workspace, GETTING, "getter", service)
    suspensions.start_handing_over()
    try:
        outcome = async_to_sync(run_tool)(panel, "call")
    finally:
        suspensions.reset_handover()
    assert outcome.error is not None and outcome.error["code"] == "INTERRUPTED"
    row = PanelSuspension.objects.get(panel=panel)
    assert row.lease_until < timezone.now()  # no lease kept: another process may take it at once
    assert service.requests == []
    orphan(row.pk)  # the stopping process is gone by the time another one looks
    service.release.set()
    assert take_over_all() == 1
    assert state_of(panel)["result"] == "answered" and state_of(panel)["loading"] is False


NAPPING = """<NexusPanel id="napper" title="Napper">
  <Data><State name="woke" type="string" default="" /></Data>
  <Logic>
    <Extension name="nexus.timer" alias="timer" />
    <Tool name="call">
      <Capabilities>
        <Capability type="state:write" scope="*" />
        <Capability type="ext:timer" scope="*" />
      </Capabilities>
      <Handler>$state.woke = await $ext.timer.sleep(60000);</Handler>
    </Tool>
  </Logic>
  <View><Text content="{$state.woke}" /></View>
</NexusPanel>"""


def napper(workspace: Any) -> Any:
    from workspaces.services.panels import create_panel as service_create

    return async_to_sync(service_create)(workspace, NAPPING, panel_id="napper")[0]


def test_a_sleep_is_stored_as_the_moment_it_is_due(workspace: Any) -> None:
    panel = napper(workspace)
    before = timezone.now()
    stopped = start_only(panel)
    row = PanelSuspension.objects.get(panel=panel)
    get_runtime().cancel(stopped.suspension_id)
    assert (row.extension, row.method) == ("timer", "until")
    due = datetime.fromisoformat(row.call_args[0])
    assert before + timedelta(seconds=60) <= due <= timezone.now() + timedelta(seconds=60)
    assert row.deadline >= due


def test_a_timer_taken_over_wakes_when_it_was_due_even_past_its_deadline(workspace: Any) -> None:
    panel = napper(workspace)
    stopped = start_only(panel)
    get_runtime().cancel(stopped.suspension_id)
    row = PanelSuspension.objects.get(panel=panel)
    # Every process was down past the wake-up time: the next one wakes the handler at once.
    was_due = (timezone.now() - timedelta(seconds=30)).isoformat()
    orphan(row.pk, call_args=[was_due], deadline=timezone.now() - timedelta(seconds=1))
    started = time.monotonic()
    assert take_over_all() == 1
    assert time.monotonic() - started < 30, "a timer already due does not wait its whole length again"
    woke = state_of(panel)["woke"]
    assert woke and datetime.fromisoformat(woke) >= timezone.now() - timedelta(seconds=30)
    assert not PanelSuspension.objects.filter(panel=panel).exists()
