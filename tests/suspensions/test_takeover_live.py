"""Two live servers on PostgreSQL and Redis: handlers waiting through one of them finish on the other
when the first is killed (SIGKILL) or replaced (SIGTERM), each exactly once, and sockets on the
survivor get their PATCHes."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import using_postgres
from tests.integration.conftest import Live, example, start_live
from tests.support.servers import redis_server, scratch_database
from tests.suspensions.conftest import held_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(not using_postgres(), reason="needs DATABASE_URL=postgres://…")]

HANDLERS = 8


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def panel_state(live: Live, panel_id: str, server: Any) -> dict[str, Any]:
    response = live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/state/", server=server)
    assert response.status_code == 200, response.text
    return dict(response.json()["state"])


async def final_patch(socket: Any, timeout: float) -> dict[str, Any]:
    """The PATCH that sets status (the handler's last segment), skipping the others."""

    async def wait() -> dict[str, Any]:
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "PATCH" and any(m.get("key") == "status" for m in frame["mutations"]):
                return dict(frame)

    return await asyncio.wait_for(wait(), timeout)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_waiting_handlers_finish_once_on_the_survivor(tmp_path: Path, stop: signal.Signals) -> None:
    http, held = held_service()
    serving = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    with redis_server() as redis_url, scratch_database(tmp_path) as database:
        assert redis_url, "this test needs redis-server on this machine or REDIS_URL"
        live = start_live(tmp_path, database.url, processes=2, REDIS_URL=redis_url,
                          HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1", SUSPENSION_LEASE_SECONDS="2")
        doomed, survivor = live.server, live.extra_servers[0]
        try:
            ids = [f"mon{index}" for index in range(HANDLERS)]
            for panel_id in ids:
                response = live.api("POST", "/api/v1/workspaces/acme/panels/", json={
                    "id": panel_id, "source": example("monitor"), "extensions": {"http": {"baseURL": held.url}},
                })
                assert response.status_code == 201, response.text

            async def scenario() -> list[dict[str, Any]]:
                watchers = [await live.connect(panel_id, server=survivor) for panel_id in ids]
                callers = [await live.connect(panel_id, server=doomed) for panel_id in ids]
                for index, caller in enumerate(callers):
                    await caller.send(json.dumps({"type": "TRIGGER", "tool": "checkHealth", "args": {},
                                                  "requestId": f"r{index}"}))
                await asyncio.to_thread(wait_for, lambda: len(held.requests) >= HANDLERS, 60, "the calls")

                def all_waiting() -> bool:
                    return all(live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/", server=survivor)
                               .json()["waitingHandlers"] == 1 for panel_id in ids)

                await asyncio.to_thread(wait_for, all_waiting, 30, "eight stored waiting handlers")
                doomed.process.send_signal(stop)
                await asyncio.to_thread(doomed.process.wait, 60)
                held.release.set()
                patches = await asyncio.gather(*(final_patch(watcher, 90) for watcher in watchers))
                for socket in watchers + callers:
                    await socket.close()
                return patches

            patches = asyncio.run(scenario())
            for patch in patches:
                assert {m["key"]: m.get("value") for m in patch["mutations"]}.get("status") == "online", patch
            for panel_id in ids:
                state = panel_state(live, panel_id, survivor)
                assert (state["status"], state["loading"], len(state["history"])) == ("online", False, 1), state
                detail = live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/", server=survivor).json()
                assert detail["waitingHandlers"] == 0
            assert _takeovers(survivor) == HANDLERS
        finally:
            held.release.set()
            survivor.terminate()
            doomed.kill()
            http.shutdown()
            http.server_close()


def _takeovers(server: Any) -> int:
    import httpx

    for line in httpx.get(server.metrics_url, timeout=30).text.splitlines():
        if line.startswith("nexus_suspension_takeovers_total "):
            return int(float(line.split()[1]))
    return -1


def test_a_timer_set_through_a_killed_process_wakes_on_the_other(tmp_path: Path) -> None:
    from tests.api.test_timers import SLEEPER

    with redis_server() as redis_url, scratch_database(tmp_path) as database:
        assert redis_url, "this test needs redis-server on this machine or REDIS_URL"
        live = start_live(tmp_path, database.url, processes=2, REDIS_URL=redis_url, SUSPENSION_LEASE_SECONDS="2")
        doomed, survivor = live.server, live.extra_servers[0]
        try:
            live.create("sleeper", SLEEPER)

            async def scenario() -> float:
                caller = await live.connect("sleeper", server=doomed)
                await caller.send(json.dumps({"type": "TRIGGER", "tool": "nap", "args": {"ms": 4000},
                                              "requestId": "nap"}))
                set_at = time.monotonic()

                def waiting() -> bool:
                    detail = live.api("GET", "/api/v1/workspaces/acme/panels/sleeper/", server=survivor).json()
                    return bool(detail["waitingHandlers"] == 1)

                await asyncio.to_thread(wait_for, waiting, 30, "the stored timer")
                doomed.kill()
                await asyncio.to_thread(wait_for, lambda: panel_state(live, "sleeper", survivor)["woke"] != "",
                                        60, "the timer to wake on the survivor")
                return time.monotonic() - set_at

            woke_after = asyncio.run(scenario())
            assert woke_after >= 4.0, "the survivor waited for the time that was left, not less"
            assert not panel_state(live, "sleeper", survivor)["woke"].startswith("refused")
            assert _takeovers(survivor) == 1
        finally:
            survivor.terminate()
            doomed.kill()
