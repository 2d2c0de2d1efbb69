"""Operator commands: nexus_check, nexus_warmup, nexus_gc."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.support.servers import base_env, manage
from workspaces.models import AuditOutcome, AuditRecord, Panel, PanelStatus, Workspace

MINIMAL = {"format": 1, "id": "p", "title": "P"}


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_nexus_check_passes_every_check() -> None:
    output = run("nexus_check", "--deploy")
    names = ("config", "production", "database", "migrations", "channel layer", "sandbox", "cache dir", "memory")
    for name in names:
        assert any(line.startswith("ok") and name in line for line in output.splitlines()), output
    assert "all 8 checks passed" in output


@pytest.mark.slow
def test_nexus_check_with_the_database_down_exits_non_zero_naming_the_check() -> None:
    env = base_env(DATABASE_URL="postgres://nexus@127.0.0.1:1/nowhere")
    done = manage("nexus_check", env=env, check=False)
    assert done.returncode != 0
    failing = [line for line in done.stdout.splitlines() if line.startswith("fail")]
    assert len(failing) == 1 and "database" in failing[0], done.stdout
    assert "check(s) failed: database" in done.stderr


@pytest.mark.slow
def test_nexus_warmup_fills_the_cache_and_reports_the_time(tmp_path: Path) -> None:
    env = base_env(CACHE_DIR=str(tmp_path / "cache"))
    cold = manage("nexus_warmup", env=env)
    assert "compiled" in cold.stdout and " ms" in cold.stdout
    assert any((tmp_path / "cache").iterdir())
    warm = manage("nexus_warmup", env=env)
    assert "loaded from cache" in warm.stdout


def _panel(workspace: Workspace, panel_id: str, status: str, age_days: int) -> Panel:
    panel = Panel.objects.create(workspace=workspace, panel_id=panel_id, source="<NexusPanel/>",
                                 definition=MINIMAL, status=status)
    Panel.objects.filter(pk=panel.pk).update(last_activity=timezone.now() - timedelta(days=age_days))
    return panel


@pytest.mark.django_db(transaction=True)  # the panel service deletes from its own workers
def test_nexus_gc_dry_run_lists_and_keeps_then_purges() -> None:
    workspace = Workspace.objects.create(slug="gc", name="GC")
    _panel(workspace, "old-stopped", PanelStatus.STOPPED, 30)
    _panel(workspace, "old-error", PanelStatus.ERROR, 30)
    _panel(workspace, "old-running", PanelStatus.RUNNING, 30)
    _panel(workspace, "new-stopped", PanelStatus.STOPPED, 1)
    old = AuditRecord.record(action="state:write", outcome=AuditOutcome.DENIED)
    AuditRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=200))
    AuditRecord.record(action="state:write", outcome=AuditOutcome.DENIED)

    listing = run("nexus_gc", "--older-than", "7d", "--dry-run")
    assert "would delete panel gc/old-stopped" in listing and "would delete panel gc/old-error" in listing
    assert "old-running" not in listing and "new-stopped" not in listing
    assert "would delete 2 panel(s) and 1 audit record(s) (dry run)" in listing
    assert Panel.objects.count() == 4 and AuditRecord.objects.count() == 2

    summary = run("nexus_gc", "--older-than", "7d", "--no-progress")
    assert "removed 2 panel(s) and 1 audit record(s)" in summary
    assert sorted(Panel.objects.values_list("panel_id", flat=True)) == ["new-stopped", "old-running"]
    assert AuditRecord.objects.count() == 1


@pytest.mark.django_db
def test_nexus_gc_refuses_a_bad_age() -> None:
    with pytest.raises(CommandError, match="use a number and a unit"):
        run("nexus_gc", "--older-than", "soon")


@pytest.mark.parametrize("command", ["nexus_check", "nexus_warmup", "nexus_gc", "nexus_serve", "nexus_bench"])
def test_every_command_explains_itself(command: str) -> None:
    env = base_env()
    done = manage(command, "--help", env=env)
    assert len(done.stdout) > 200 and "usage:" in done.stdout


