"""The workspace service on its own: the one-owner rule holds under concurrent changes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from workspaces.models import Membership, Role
from workspaces.services import workspaces as workspace_service
from workspaces.services.panels import ServiceError


def run_together(*calls: Any) -> list[BaseException | None]:
    """Run each call in its own thread (own database connection), released at the same moment."""
    start = threading.Barrier(len(calls))
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait(timeout=30)
        try:
            calls[index]()
        except BaseException as exc:  # reported to the test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("change", ["remove", "demote"])
def test_two_owners_stepping_down_at_once_leave_one(transactional_db: None, make_user: Any,
                                                    make_workspace: Any, change: str) -> None:
    ann, bea = make_user("ann"), make_user("bea")
    workspace = make_workspace("pair", {ann: Role.OWNER, bea: Role.OWNER})

    def step_down(user: Any) -> Any:
        if change == "remove":
            return lambda: workspace_service.remove_member(workspace, user)
        return lambda: workspace_service.change_role(workspace, user, Role.VIEWER)

    outcomes = run_together(step_down(ann), step_down(bea))
    refused = [outcome for outcome in outcomes if outcome is not None]
    assert len(refused) == 1 and isinstance(refused[0], ServiceError), outcomes
    assert refused[0].code == "INVALID_REQUEST" and "at least one owner" in refused[0].message
    assert Membership.objects.filter(workspace=workspace, role=Role.OWNER).count() == 1


def test_refusals_name_what_to_do(transactional_db: None, make_user: Any, make_workspace: Any) -> None:
    ann, cat = make_user("ann"), make_user("cat")
    workspace = make_workspace("solo", {ann: Role.OWNER})
    with pytest.raises(ServiceError) as removed:
        workspace_service.remove_member(workspace, ann)
    assert "make another member owner first" in removed.value.message
    with pytest.raises(ServiceError) as missing:
        workspace_service.change_role(workspace, cat, Role.EDITOR)
    assert missing.value.code == "NOT_FOUND"
    workspace_service.add_member(workspace, cat, Role.EDITOR)
    with pytest.raises(ServiceError) as twice:
        workspace_service.add_member(workspace, cat, Role.VIEWER)
    assert twice.value.code == "INVALID_REQUEST" and "already a member" in twice.value.message
