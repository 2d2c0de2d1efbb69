"""Access ends when it is revoked: open sockets on a live server are closed or narrowed at once.

Removing a member closes their sockets with 4403, a lower role takes effect on the next frame,
deleting a workspace (REST, admin, one by one or in bulk) runs each panel's unmount and closes
its sockets with 4404, and a socket opened with a JWT closes with 4401 when the token expires.
With Redis, all of it crosses server processes, and ``nexus_gc`` run as a separate command
reaches the server's sockets too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Live, example, receive_until, start_live
from tests.support.servers import manage, provision, redis_server, scratch_database

CLOSE_WAIT_S = 10  # a bound for the test only; the server closes well within a second
GOODBYE = example("counter").replace(
    "</Logic>",
    '  <Event name="bye" broadcast="true" />\n'
    '    <Lifecycle on="unmount"><Handler>$emit(\'bye\', $state.count);</Handler></Lifecycle>\n  </Logic>',
)
BROKEN_GOODBYE = GOODBYE.replace(
    "</Logic>", '  <Lifecycle on="mount"><Handler>throw new Error("no mount");</Handler></Lifecycle>\n  </Logic>'
)
STAFF_SCRIPT = """
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="root")
user.is_staff = user.is_superuser = True
user.set_password("root-password-for-tests")
user.save()
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("revocation")
    with scratch_database(tmp) as database:
        nexus = start_live(tmp, database.url)
        try:
            nexus.create("counter", example("counter"))
            yield nexus
        finally:
            nexus.server.terminate()


async def closed_with(socket: Any) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes the socket: its close code and the frames before it."""
    frames: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "PING":
                await socket.send(json.dumps({"type": "PONG"}))
            else:
                frames.append(frame)

    try:
        await asyncio.wait_for(read(), CLOSE_WAIT_S)
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames
    raise AssertionError("the socket stayed open")


async def still_open(socket: Any) -> None:
    await socket.send(json.dumps({"type": "PING"}))
    await receive_until(socket, "PONG")


async def trigger(socket: Any, request_id: str) -> dict[str, Any]:
    await socket.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": request_id}))
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), CLOSE_WAIT_S))
        if frame["type"] in ("RESULT", "ERROR") and frame.get("requestId") == request_id:
            return frame


def set_role(live: Live, username: str, role: str | None, server: Any = None) -> None:
    """Change (or with None remove) a member of acme through the REST API, as its owner."""
    path = f"/api/v1/workspaces/acme/members/{username}/"
    if role is None:
        response = live.api("DELETE", path, server=server)
        assert response.status_code == 204, response.text
    elif live.api("GET", path).status_code == 404:
        response = live.api("POST", "/api/v1/workspaces/acme/members/", json={"username": username, "role": role})
        assert response.status_code == 201, response.text
    else:
        response = live.api("PATCH", path, json={"role": role}, server=server)
        assert response.status_code == 200, response.text


def new_workspace(live: Live, slug: str, *panels: str) -> None:
    assert live.api("POST", "/api/v1/workspaces/", json={"slug": slug, "name": slug}).status_code == 201
    for panel_id in panels:
        live.create(panel_id, GOODBYE, workspace=slug)


async def connect(live: Live, workspace: str, panel_id: str, user: str = "alice", server: Any = None) -> Any:
    url = f"{(server or live.server).ws_url}/ws/workspaces/{workspace}/panels/{panel_id}/?token={live.tokens[user]}"
    socket = await websockets.connect(url, open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    return socket


def assert_unmounted_then_closed(code: int | None, frames: list[dict[str, Any]]) -> None:
    assert code == 4404
    assert [frame["name"] for frame in frames if frame["type"] == "EVENT"] == ["bye"], frames


# ---------------------------------------------------------------- members


async def test_a_removed_member_is_disconnected_with_4403(live: Live) -> None:
    viewer = await live.connect("counter", "carol")
    owner = await live.connect("counter", "alice")
    try:
        set_role(live, "carol", None)
        code, _ = await closed_with(viewer)
        assert code == 4403
        await still_open(owner)  # the others of the workspace keep their sockets
    finally:
        await owner.close()
        set_role(live, "carol", "viewer")


async def test_a_downgraded_editor_loses_execute_at_once_and_keeps_reading(live: Live) -> None:
    editor = await live.connect("counter", "dave")
    try:
        assert (await trigger(editor, "before"))["status"] == "success"
        set_role(live, "dave", "viewer")
        refused = await trigger(editor, "after")
        for attempt in range(20):  # the change reaches the socket as a message of its own
            if refused["type"] == "ERROR":
                break
            await asyncio.sleep(0.05)
            refused = await trigger(editor, f"after-{attempt}")
        assert (refused["type"], refused["code"]) == ("ERROR", "FORBIDDEN"), refused
        await still_open(editor)
        owner = await live.connect("counter", "alice")
        assert (await trigger(owner, "owner"))["status"] == "success"
        await receive_until(editor, "PATCH")  # a viewer still follows the panel
        await owner.close()
    finally:
        await editor.close()
        set_role(live, "dave", "editor")


async def test_a_promoted_viewer_may_execute_at_once(live: Live) -> None:
    viewer = await live.connect("counter", "carol")
    try:
        assert (await trigger(viewer, "as-viewer"))["code"] == "FORBIDDEN"
        set_role(live, "carol", "editor")
        for attempt in range(20):
            answer = await trigger(viewer, f"as-editor-{attempt}")
            if answer["type"] == "RESULT":
                break
            await asyncio.sleep(0.05)
        assert answer.get("status") == "success", answer
    finally:
        await viewer.close()
        set_role(live, "carol", "viewer")


# ---------------------------------------------------------------- tokens


async def test_a_socket_opened_with_a_jwt_closes_with_4401_when_it_expires(live: Live) -> None:
    token = manage("nexus_token", "alice", "--ttl", "3s", env=live.env).stdout.strip().splitlines()[-1]
    url = f"{live.server.ws_url}/ws/workspaces/acme/panels/counter/?token={token}"
    socket = await websockets.connect(url, open_timeout=20)
    assert json.loads(await socket.recv())["type"] == "CONNECTED"
    assert (await trigger(socket, "fresh"))["status"] == "success"
    code, _ = await closed_with(socket)
    assert code == 4401
    again = await websockets.connect(url, open_timeout=20)  # the expired token opens nothing any more
    code, frames = await closed_with(again)
    assert code == 4401 and frames == []


# ---------------------------------------------------------------- deleting workspaces


async def test_deleting_a_workspace_over_rest_unmounts_and_closes_with_4404(live: Live) -> None:
    new_workspace(live, "doomed-rest", "a")
    socket = await connect(live, "doomed-rest", "a")
    assert live.api("DELETE", "/api/v1/workspaces/doomed-rest/").status_code == 204
    assert_unmounted_then_closed(*await closed_with(socket))


class AdminSession:
    """The admin console of the live server, signed in as a staff user.

    The server marks its cookies Secure (no DEBUG); httpx keeps those for https only, so this
    session carries them itself over the loopback's plain http.
    """

    def __init__(self, live: Live) -> None:
        manage("shell", "-c", STAFF_SCRIPT, env=live.env)
        self.client = httpx.Client(base_url=live.server.url, timeout=60)
        self.cookies: dict[str, str] = {}
        self.post("/admin/login/?next=/admin/", {"username": "root", "password": "root-password-for-tests"})

    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        for _ in range(5):
            cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
            response = self.client.request(method, path, data=data, headers={"Cookie": cookie})
            self.cookies.update(response.cookies.items())
            if response.status_code not in (301, 302, 303):
                return response
            method, path, data = "GET", response.headers["location"], None
        raise AssertionError(f"too many redirects from {path}")

    def csrf(self, path: str) -> str:
        page = self.request("GET", path).text
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert match, page[:500]
        return match.group(1)

    def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        response = self.request("POST", path, {**data, "csrfmiddlewaretoken": self.csrf(path)})
        assert response.status_code == 200, response.text[:500]
        return response

    def workspace_id(self, slug: str) -> str:
        page = self.request("GET", f"/admin/workspaces/workspace/?q={slug}").text
        match = re.search(r'href="/admin/workspaces/workspace/(\d+)/change/[^"]*">' + re.escape(slug) + "<", page)
        assert match, page[:2000]
        return match.group(1)


async def test_deleting_a_workspace_in_the_admin_unmounts_and_closes_with_4404(live: Live) -> None:
    new_workspace(live, "doomed-admin", "a")
    socket = await connect(live, "doomed-admin", "a")
    admin = await asyncio.to_thread(AdminSession, live)
    workspace_id = admin.workspace_id("doomed-admin")
    await asyncio.to_thread(admin.post, f"/admin/workspaces/workspace/{workspace_id}/delete/", {"post": "yes"})
    assert_unmounted_then_closed(*await closed_with(socket))
    assert live.api("GET", "/api/v1/workspaces/doomed-admin/").status_code == 404


async def test_bulk_deleting_workspaces_in_the_admin_unmounts_and_closes_with_4404(live: Live) -> None:
    new_workspace(live, "doomed-bulk-1", "a", "b")
    new_workspace(live, "doomed-bulk-2", "c")
    sockets = [await connect(live, "doomed-bulk-1", "a"), await connect(live, "doomed-bulk-1", "b"),
               await connect(live, "doomed-bulk-2", "c")]
    admin = await asyncio.to_thread(AdminSession, live)
    ids = [admin.workspace_id("doomed-bulk-1"), admin.workspace_id("doomed-bulk-2")]
    await asyncio.to_thread(admin.post, "/admin/workspaces/workspace/",
                            {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    for socket in sockets:
        assert_unmounted_then_closed(*await closed_with(socket))
    assert all(live.api("GET", f"/api/v1/workspaces/doomed-bulk-{n}/").status_code == 404 for n in (1, 2))


# ---------------------------------------------------------------- across processes (Redis)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("revocation-pair")
    with redis_server() as redis_url, scratch_database(tmp) as database:
        assert redis_url, "these tests need redis-server on this machine or REDIS_URL"
        nexus = start_live(tmp, database.url, processes=2, REDIS_URL=redis_url)
        try:
            nexus.create("counter", example("counter"))
            yield nexus
        finally:
            for server in [nexus.server, *nexus.extra_servers]:
                server.terminate()


@pytest.mark.slow
@pytest.mark.redis
async def test_a_removal_on_one_process_closes_the_socket_on_the_other(pair: Live) -> None:
    other = pair.extra_servers[0]
    viewer = await pair.connect("counter", "carol")  # on the first process
    try:
        set_role(pair, "carol", None, server=other)
        code, _ = await closed_with(viewer)
        assert code == 4403
    finally:
        set_role(pair, "carol", "viewer")


@pytest.mark.slow
@pytest.mark.redis
async def test_nexus_gc_unmounts_and_closes_the_servers_sockets_with_4404(pair: Live) -> None:
    pair.create("failed", BROKEN_GOODBYE)  # mount fails: the panel is in error, a candidate for gc
    assert pair.api("GET", "/api/v1/workspaces/acme/panels/failed/").json()["status"] == "error"
    socket = await pair.connect("failed")
    await asyncio.sleep(1.1)  # older than --older-than 1s
    done = await asyncio.to_thread(manage, "nexus_gc", "--older-than", "1s", "--no-progress", env=pair.env)
    assert "removed 1 panel(s)" in done.stdout, done.stdout + done.stderr
    assert_unmounted_then_closed(*await closed_with(socket))
    assert pair.api("GET", "/api/v1/workspaces/acme/panels/counter/").status_code == 200



@pytest.mark.slow
@pytest.mark.redis
async def test_deleting_a_user_closes_their_sockets_with_4403(pair: Live) -> None:
    pair.tokens["zed"] = await asyncio.to_thread(provision, pair.env, "zed", "acme", role="viewer", migrate=False)
    socket = await pair.connect("counter", "zed")
    script = "from django.contrib.auth import get_user_model; get_user_model().objects.filter(username='zed').delete()"
    await asyncio.to_thread(manage, "shell", "-c", script, env=pair.env)
    code, _ = await closed_with(socket)
    assert code == 4403
