"""nexus_gc --keep N: each panel keeps its newest N revisions; --dry-run only counts."""

from __future__ import annotations

import io
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.api.conftest import COUNTER, create_panel
from workspaces.models import PanelRevision
from workspaces.services import panels as panel_service


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("nexus_gc", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def numbers(panel: Any) -> list[int]:
    return list(PanelRevision.objects.filter(panel=panel).values_list("number", flat=True))


@pytest.mark.django_db(transaction=True)
def test_keep_prunes_the_oldest_revisions_of_each_panel(make_workspace: Any) -> None:
    workspace = make_workspace("lab")
    busy, quiet = create_panel(workspace, COUNTER, "busy"), create_panel(workspace, COUNTER, "quiet")
    for title in ("A", "B", "C", "D"):
        async_to_sync(panel_service.update_source)(busy, COUNTER.replace('title="Counter"', f'title="{title}"'))

    assert "would delete 3 old revision(s)" in run("--keep", "2", "--dry-run")
    assert numbers(busy) == [5, 4, 3, 2, 1]

    assert "removed 3 old revision(s), kept 2 per panel" in run("--keep", "2")
    assert numbers(busy) == [5, 4] and numbers(quiet) == [1]
    restored = async_to_sync(panel_service.restore_revision)(busy, 4)
    assert restored.revision == 6, "numbers go on after pruning"
    assert "removed 0 old revision(s)" in run("--keep", "3")


@pytest.mark.django_db
def test_keep_must_leave_one() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        run("--keep", "0")
