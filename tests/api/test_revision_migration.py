"""Migration 0004 gives every panel that existed before it a revision 1 holding its source."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("workspaces", "0003_schedules")]
AFTER = [("workspaces", "0004_panel_revisions")]


@pytest.mark.django_db(transaction=True)
def test_existing_panels_get_revision_one() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    workspace = old.get_model("workspaces", "Workspace").objects.create(slug="old", name="Old")
    old.get_model("workspaces", "Panel").objects.create(workspace=workspace, panel_id="p", source="<NexusPanel/>")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    (revision,) = new.get_model("workspaces", "PanelRevision").objects.filter(panel__panel_id="p")
    assert (revision.number, revision.source) == (1, "<NexusPanel/>")
    assert revision.content_hash == hashlib.sha256(b"<NexusPanel/>").hexdigest()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
