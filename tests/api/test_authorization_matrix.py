"""Every route x every kind of caller, each with its exact status and error code.

Callers: anonymous; an authenticated non-member (the workspace stays invisible: 404); the
owner holding a token limited to another workspace (403); each role; and the owner holding a
token limited to panel:read. Kernel routes take their workspace from the token, so there the
callers carry a `workspace_id` claim and "wrong workspace" means the panel is not visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api.conftest import COUNTER, World, assert_error

READ, CREATE, EXECUTE, DELETE, ADMIN = "panel:read", "panel:create", "panel:execute", "panel:delete", "workspace:admin"
ROLE_GRANTS = {
    "viewer": {READ},
    "editor": {READ, CREATE, EXECUTE, DELETE},
    "owner": {READ, CREATE, EXECUTE, DELETE, ADMIN},
}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    success: int
    permission: str | None  # None: no workspace involved (only authentication)
    body: dict[str, Any] = field(default_factory=dict)
    kernel: bool = False


API = "/api/v1/workspaces"
ROUTES = [
    Route("workspace-list", "get", f"{API}/", 200, None),
    Route("workspace-create", "post", f"{API}/", 201, "create-workspace", {"slug": "fresh", "name": "Fresh"}),
    Route("workspace-get", "get", f"{API}/ws/", 200, READ),
    Route("workspace-patch", "patch", f"{API}/ws/", 200, ADMIN, {"name": "Renamed"}),
    Route("workspace-delete", "delete", f"{API}/ws/", 204, ADMIN),
    Route("member-list", "get", f"{API}/ws/members/", 200, READ),
    Route("member-add", "post", f"{API}/ws/members/", 201, ADMIN, {"username": "oscar", "role": "viewer"}),
    Route("member-get", "get", f"{API}/ws/members/victor/", 200, READ),
    Route("member-patch", "patch", f"{API}/ws/members/victor/", 200, ADMIN, {"role": "editor"}),
    Route("member-delete", "delete", f"{API}/ws/members/victor/", 204, ADMIN),
    Route("panel-list", "get", f"{API}/ws/panels/", 200, READ),
    Route("panel-create", "post", f"{API}/ws/panels/", 201, CREATE, {"id": "fresh", "source": COUNTER}),
    Route("panel-validate", "post", f"{API}/ws/panels/validate/", 200, CREATE, {"source": COUNTER}),
    Route("panel-get", "get", f"{API}/ws/panels/counter/", 200, READ),
    Route("panel-state", "get", f"{API}/ws/panels/counter/state/", 200, READ),
    Route("panel-tool", "post", f"{API}/ws/panels/counter/tools/increment/", 200, EXECUTE, {"args": {"by": 2}}),
    Route("panel-activity", "get", f"{API}/ws/panels/counter/activity/", 200, READ),
    Route("panel-patch", "patch", f"{API}/ws/panels/counter/", 200, CREATE,
          {"source": COUNTER.replace('title="Counter"', 'title="Edited"')}),
    Route("panel-revisions", "get", f"{API}/ws/panels/counter/revisions/", 200, READ),
    Route("panel-revision", "get", f"{API}/ws/panels/counter/revisions/1/", 200, READ),
    Route("panel-revision-restore", "post", f"{API}/ws/panels/counter/revisions/1/restore/", 200, CREATE,
          {"message": "back"}),
    Route("panel-stop", "post", f"{API}/ws/panels/counter/stop/", 200, EXECUTE),
    Route("panel-start", "post", f"{API}/ws/panels/counter/start/", 200, EXECUTE),
    Route("panel-delete", "delete", f"{API}/ws/panels/counter/", 204, DELETE),
    Route("kernel-list", "get", "/panels", 200, READ, kernel=True),
    Route("kernel-create", "post", "/panels", 201, CREATE, {"id": "fresh", "source": COUNTER}, kernel=True),
    Route("kernel-from-nxml", "post", "/panels/from-nxml", 201, CREATE, {"nxmlSource": COUNTER}, kernel=True),
    Route("kernel-get", "get", "/panels/counter", 200, READ, kernel=True),
    Route("kernel-state", "get", "/panels/counter/state", 200, READ, kernel=True),
    Route("kernel-trigger", "post", "/panels/counter/trigger/increment", 200, EXECUTE, {"args": {"by": 2}},
          kernel=True),
    Route("kernel-delete", "delete", "/panels/counter", 204, DELETE, kernel=True),
]

CALLERS = ["anonymous", "non-member", "token-for-other-workspace", "viewer", "editor", "owner", "read-only-token"]


def expected(route: Route, caller: str) -> tuple[int, str | None]:
    """(status, error code or None for success)."""
    ok = (route.success, None)
    forbidden = (403, "FORBIDDEN")
    if caller == "anonymous":
        return 401, "UNAUTHENTICATED"
    if route.permission is None:
        return ok
    if route.permission == "create-workspace":
        # Anyone may create a workspace, unless the token is narrowed (to a workspace or permissions).
        return forbidden if caller in ("token-for-other-workspace", "read-only-token") else ok
    if caller == "non-member":
        return 404, "NOT_FOUND"
    if caller == "token-for-other-workspace":
        if not route.kernel:
            return forbidden
        # A kernel route acts in the token's workspace, where this panel does not exist.
        return ok if route.name in ("kernel-list", "kernel-create", "kernel-from-nxml") else (404, "NOT_FOUND")
    if caller == "read-only-token":
        return ok if route.permission == READ else forbidden
    return ok if route.permission in ROLE_GRANTS[caller] else forbidden


def client_for(world: World, caller: str, route: Route, api_client_for: Any) -> Any:
    claim = "ws" if route.kernel else None
    return {
        "anonymous": lambda: api_client_for(None),
        "non-member": lambda: api_client_for(world.outsider),
        "token-for-other-workspace": lambda: api_client_for(world.owner, workspace="other"),
        "viewer": lambda: api_client_for(world.viewer, workspace=claim),
        "editor": lambda: api_client_for(world.editor, workspace=claim),
        "owner": lambda: api_client_for(world.owner, workspace=claim),
        "read-only-token": lambda: api_client_for(world.owner, workspace=claim, permissions=[READ]),
    }[caller]()


CASES = [pytest.param(route, caller, id=f"{route.name}-{caller}") for route in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_route_answers_each_caller_exactly(world: World, api_client_for: Any, route: Route, caller: str) -> None:
    client = client_for(world, caller, route, api_client_for)
    call = getattr(client, route.method)
    response = call(route.path, route.body, format="json") if route.body else call(route.path)
    status, code = expected(route, caller)
    if code is None:
        assert response.status_code == status, (response.status_code, response.content[:400])
    else:
        assert_error(response, status, code)


def test_matrix_covers_every_route_of_both_url_modules() -> None:
    from django.urls import get_resolver

    api_routes = get_resolver("workspaces.api.urls").url_patterns
    kernel_routes = get_resolver("workspaces.api.kernel_urls").url_patterns
    names = {pattern.name for pattern in [*api_routes, *kernel_routes]}
    covered = {
        "workspaces", "workspace", "members", "member", "panels", "panel-validate", "panel", "panel-state",
        "panel-tool", "panel-trigger", "panels-from-nxml", "panel-activity", "panel-start", "panel-stop",
        "panel-revisions", "panel-revision", "panel-revision-restore",
    }
    # Schedule actions need a panel that declares a schedule: tests/schedules/ checks each caller there.
    scheduled = {"panel-schedule-pause", "panel-schedule-resume", "panel-schedule-run"}
    public = {"token", "token-refresh", "schema", "docs", "me"}  # test_auth / test_schema / test_routing
    slashed = {"panels-slash", "panel-slash", "panel-state-slash", "panel-trigger-slash",
               "panels-from-nxml-slash"}  # test_routing
    assert names == covered | public | slashed | scheduled
