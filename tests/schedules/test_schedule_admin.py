"""The admin lists schedules and pauses or resumes them through the schedule service."""

from __future__ import annotations

from typing import Any

from django.test import Client

from workspaces.models import Schedule

CHANGELIST = "/admin/workspaces/schedule/"


def test_schedules_are_listed_and_paused_and_resumed(admin_client: Client, ticker: Any) -> None:
    page = admin_client.get(CHANGELIST).content.decode()
    assert "every 1s" in page and "failing" in page
    chosen = [Schedule.objects.get(panel=ticker, name="tick").pk]
    admin_client.post(CHANGELIST, {"action": "pause", "_selected_action": chosen}, follow=True)
    assert Schedule.objects.get(pk=chosen[0]).paused
    admin_client.post(CHANGELIST, {"action": "resume", "_selected_action": chosen}, follow=True)
    assert not Schedule.objects.get(pk=chosen[0]).paused
