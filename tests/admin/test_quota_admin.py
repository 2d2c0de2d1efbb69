"""Workspace quotas in the admin console: overrides saved through the quota service, usage shown beside limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from tests.admin.test_workspace_admin import WORKSPACES, change_form, team  # noqa: F401 - the team fixture
from workspaces.models import Workspace, WorkspaceQuota
from workspaces.services import quotas
from workspaces.services.quotas import EXECUTIONS, Charge

HOUR_MS = 3_600_000


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    quotas.use_counters(quotas.LocalCounters(window_ms=HOUR_MS))
    quotas.forget_limits()
    yield
    quotas.use_counters(None)
    quotas.forget_limits()


def test_an_override_saved_in_the_admin_is_used_at_once(admin_client: Client, team: Workspace) -> None:  # noqa: F811
    assert quotas.limits_for("team").executions == 600  # cached: the save must replace it
    data = change_form(team, {})
    data.update({"quota-TOTAL_FORMS": "1", "quota-0-workspace": str(team.pk), "quota-0-executions_per_minute": "5",
                 "quota-0-max_concurrent": "", "quota-0-sandbox_ms_per_minute": "",
                 "quota-0-http_calls_per_minute": ""})
    response = admin_client.post(f"{WORKSPACES}{team.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    row = WorkspaceQuota.objects.get(workspace=team)
    assert (row.executions_per_minute, row.max_concurrent) == (5, None)
    assert quotas.limits_for("team").executions == 5
    assert quotas.limits_for("team").concurrent == 4, "an empty field keeps the default"


def test_the_change_page_shows_current_use_against_the_limits(admin_client: Client, team: Workspace) -> None:  # noqa: F811
    quotas.save_override(WorkspaceQuota(workspace=team, executions_per_minute=9))
    quotas.charge("team", [Charge(EXECUTIONS, 3, -1)])
    page = admin_client.get(f"{WORKSPACES}{team.pk}/change/").content.decode()
    assert "Quotas: current use / limit" in page
    assert "executions: 3 / 9" in page
    assert "concurrent: 0 / 4" in page


def test_a_workspace_without_overrides_shows_its_use_against_the_defaults(
    admin_client: Client, team: Workspace,  # noqa: F811
) -> None:
    quotas.charge("team", [Charge(EXECUTIONS, 2, -1)])
    page = admin_client.get(f"{WORKSPACES}{team.pk}/change/").content.decode()
    assert "executions: 2 / 600" in page and "http_calls: 0 / 300" in page
    assert admin_client.get(f"{WORKSPACES}add/").status_code == 200


def test_deleting_the_override_goes_back_to_the_defaults(team: Workspace) -> None:  # noqa: F811
    row = WorkspaceQuota(workspace=team, http_calls_per_minute=1)
    quotas.save_override(row)
    assert quotas.limits_for("team").http_calls == 1
    quotas.delete_override(row)
    assert quotas.limits_for("team").http_calls == 300
    assert not WorkspaceQuota.objects.filter(workspace=team).exists()
