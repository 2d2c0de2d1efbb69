"""Schedule rows follow the source; ticks are claimed once, skipped when they overlap or were missed; runs recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.utils import timezone
from prometheus_client import REGISTRY

from tests.schedules.conftest import TICKER, run_claim
from workspaces.models import Panel, PanelRun, Schedule
from workspaces.services import activity, schedules
from workspaces.services import panels as panel_service


def rows(panel: Any) -> dict[str, Schedule]:
    return {row.name: row for row in Schedule.objects.filter(panel=panel)}


def runs_total(status: str) -> float:
    return REGISTRY.get_sample_value("nexus_schedule_runs_total", {"status": status}) or 0.0


def lag_count() -> float:
    return REGISTRY.get_sample_value("nexus_schedule_lag_seconds_count") or 0.0


def only(panel: Any, name: str) -> None:
    """Pause every schedule of the panel but ``name``, so claims see that one alone."""
    Schedule.objects.filter(panel=panel).exclude(name=name).update(paused=True)


def make_due(panel: Any, name: str, ago: timedelta = timedelta(0)) -> Any:
    now = timezone.now()
    Schedule.objects.filter(panel=panel, name=name).update(next_run_at=now - ago)
    return now


def test_creating_a_panel_creates_its_schedules(ticker: Any) -> None:
    found = rows(ticker)
    assert set(found) == {"tick", "failing", "quiet"}
    tick = found["tick"]
    assert (tick.tool, tick.every_seconds, tick.args, tick.missed, tick.paused) == ("tick", 1, {"by": 2}, "once", False)
    assert timezone.now() < tick.next_run_at <= timezone.now() + timedelta(seconds=1)
    assert found["quiet"].paused and found["quiet"].missed == "skip"


def test_a_source_change_rereads_the_schedules(ticker: Any) -> None:
    schedules.pause(rows(ticker)["tick"])
    Schedule.objects.filter(panel=ticker, name="failing").update(runs=5)
    changed = TICKER.replace('<Schedule name="failing" tool="fail" every="1s" />',
                             '<Schedule name="failing" tool="fail" every="2s" />')
    changed = changed.replace('<Schedule name="quiet" tool="tick" every="1h" enabled="false" missed="skip" />',
                              '<Schedule name="hourly" tool="tick" cron="0 * * * *" />')
    async_to_sync(panel_service.update_source)(ticker, changed)
    found = rows(ticker)
    assert set(found) == {"tick", "failing", "hourly"}
    assert found["tick"].paused, "an unchanged declaration keeps its state"
    assert found["failing"].every_seconds == 2 and found["failing"].runs == 5
    assert found["hourly"].next_run_at.minute == 0


def test_deleting_a_panel_deletes_its_schedules(ticker: Any) -> None:
    async_to_sync(panel_service.delete_panel)(ticker)
    assert not Schedule.objects.exists()


def test_a_due_tick_is_claimed_once_and_the_next_one_is_one_period_later(ticker: Any) -> None:
    only(ticker, "tick")
    now = make_due(ticker, "tick")
    due = rows(ticker)["tick"].next_run_at
    claims = schedules.claim_due(now)
    assert [(c.name, c.tool, c.args) for c in claims] == [("tick", "tick", {"by": 2})]
    assert schedules.claim_due(now) == []
    assert rows(ticker)["tick"].next_run_at == due + timedelta(seconds=1)


def test_a_run_goes_through_the_panel_service_as_actor_schedule(ticker: Any) -> None:
    only(ticker, "tick")
    succeeded, lagged = runs_total("success"), lag_count()
    claim, = schedules.claim_due(make_due(ticker, "tick"))
    result = run_claim(claim)
    assert result["status"] == "success" and result["returnValue"] == 2
    ticker.refresh_from_db()
    assert ticker.state["n"] == 2
    activity.flush()
    run = PanelRun.objects.get(panel=ticker, handler="tick")
    assert (run.actor, run.status) == ("schedule", "success")
    row = rows(ticker)["tick"]
    assert (row.last_status, row.runs, row.failures, row.running_until) == ("success", 1, 0, None)
    assert runs_total("success") == succeeded + 1
    assert lag_count() == lagged + 1


def test_a_failing_run_is_recorded_and_the_schedule_goes_on(ticker: Any) -> None:
    only(ticker, "failing")
    failed = runs_total("error")
    claim, = schedules.claim_due(make_due(ticker, "failing"))
    assert run_claim(claim)["status"] == "error"
    row = rows(ticker)["failing"]
    assert (row.last_status, row.failures, row.last_error["code"]) == ("error", 1, "EXECUTION_ERROR")
    assert "broken on purpose" in row.last_error["message"]
    assert runs_total("error") == failed + 1
    assert len(schedules.claim_due(row.next_run_at)) == 1, "the next tick is claimed as usual"


def test_a_tick_that_comes_while_the_last_run_is_going_is_skipped(ticker: Any) -> None:
    only(ticker, "tick")
    skipped = runs_total("skipped")
    first, = schedules.claim_due(make_due(ticker, "tick"))
    later = rows(ticker)["tick"].next_run_at
    assert schedules.claim_due(later) == [], "the first run holds its lease"
    assert rows(ticker)["tick"].skipped == 1
    assert runs_total("skipped") == skipped + 1
    run_claim(first)
    assert len(schedules.claim_due(rows(ticker)["tick"].next_run_at)) == 1


def test_a_crashed_runner_s_lease_runs_out(ticker: Any) -> None:
    only(ticker, "tick")
    schedules.claim_due(make_due(ticker, "tick"))  # claimed, never finished: its process died
    after_lease = timezone.now() + timedelta(seconds=schedules.LEASE_S + 1)
    assert len(schedules.claim_due(after_lease)) == 1


def test_missed_once_runs_one_catch_up_after_an_outage(ticker: Any) -> None:
    only(ticker, "tick")
    now = make_due(ticker, "tick", ago=timedelta(minutes=10))
    assert len(schedules.claim_due(now)) == 1
    row = rows(ticker)["tick"]
    assert now < row.next_run_at <= now + timedelta(seconds=1), "then back on the timetable, not 600 catch-ups"
    assert row.skipped == 0


def test_missed_skip_runs_none_after_an_outage(ticker: Any) -> None:
    only(ticker, "tick")
    Schedule.objects.filter(panel=ticker, name="tick").update(missed="skip")
    skipped = runs_total("skipped")
    now = make_due(ticker, "tick", ago=timedelta(minutes=10))
    assert schedules.claim_due(now) == []
    row = rows(ticker)["tick"]
    assert now < row.next_run_at and row.skipped == 1
    assert runs_total("skipped") == skipped + 1
    assert len(schedules.claim_due(row.next_run_at)) == 1, "the tick after the outage runs"


def test_a_late_tick_within_its_period_still_runs_under_skip(ticker: Any) -> None:
    only(ticker, "quiet")
    row = rows(ticker)["quiet"]
    schedules.resume(row)
    now = make_due(ticker, "quiet", ago=timedelta(minutes=5))  # late, but the next hourly tick is not due
    assert len(schedules.claim_due(now)) == 1


def test_paused_schedules_and_stopped_panels_do_not_run(ticker: Any) -> None:
    only(ticker, "tick")
    now = make_due(ticker, "tick")
    schedules.pause(rows(ticker)["tick"])
    assert schedules.claim_due(now) == []
    resumed = schedules.resume(rows(ticker)["tick"])
    assert resumed.next_run_at > now, "resuming does not catch up the paused ticks"
    make_due(ticker, "tick")
    async_to_sync(panel_service.stop_panel)(Panel.objects.select_related("workspace").get(pk=ticker.pk))
    assert schedules.claim_due(timezone.now()) == []


def test_run_now_runs_once_and_keeps_the_timetable(ticker: Any) -> None:
    row = rows(ticker)["quiet"]
    result = async_to_sync(schedules.run_now)(row, "eddie")
    assert result["status"] == "success"
    after = rows(ticker)["quiet"]
    assert (after.runs, after.last_status, after.next_run_at, after.paused) == (1, "success", row.next_run_at, True)
    activity.flush()
    assert PanelRun.objects.get(panel=ticker, handler="tick").actor == "eddie"
