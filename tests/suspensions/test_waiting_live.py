"""A live server with two sandbox instances: thirty monitors wait on a held service, and meanwhile a
counter on another panel answers; once the service answers, all thirty finish online."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import example, start_live
from tests.support.servers import scratch_database
from tests.suspensions.conftest import held_service
from tests.suspensions.test_takeover_live import final_patch, panel_state, wait_for

pytestmark = pytest.mark.slow

MONITORS = 30


def test_thirty_waiting_monitors_leave_the_pool_to_a_counter(tmp_path: Path) -> None:
    http, held = held_service()
    serving = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    with scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, MAX_INSTANCES="2", MIN_INSTANCES="1",
                          HTTP_ALLOWED_PRIVATE_HOSTS="127.0.0.1", HTTP_MAX_CONCURRENT=str(MONITORS))
        try:
            ids = [f"mon{index}" for index in range(MONITORS)]
            for panel_id in ids:
                response = live.api("POST", "/api/v1/workspaces/acme/panels/", json={
                    "id": panel_id, "source": example("monitor"), "extensions": {"http": {"baseURL": held.url}},
                })
                assert response.status_code == 201, response.text
            live.create("counter", example("counter"))

            async def scenario() -> tuple[list[dict[str, object]], dict[str, object]]:
                sockets = [await live.connect(panel_id) for panel_id in ids]
                for index, socket in enumerate(sockets):
                    await socket.send(json.dumps({"type": "TRIGGER", "tool": "checkHealth", "args": {},
                                                  "requestId": f"m{index}"}))
                await asyncio.to_thread(wait_for, lambda: len(held.requests) >= MONITORS, 60, "thirty calls")
                health = live.api("GET", "/health").json()["runtime"]
                counter = live.api("POST", "/api/v1/workspaces/acme/panels/counter/tools/increment/",
                                   json={"args": {"by": 1}})
                assert counter.status_code == 200, counter.text
                assert not held.release.is_set(), "the counter answered while every monitor still waited"
                held.release.set()
                patches = await asyncio.gather(*(final_patch(socket, 60) for socket in sockets))
                for socket in sockets:
                    await socket.close()
                return patches, health

            patches, health = asyncio.run(scenario())
            assert health["activeInstances"] == 0 and health["suspended"] >= MONITORS, health
            assert len(patches) == MONITORS
            for panel_id in ids:
                state = panel_state(live, panel_id, live.server)
                assert (state["status"], state["loading"], len(state["history"])) == ("online", False, 1), state
        finally:
            held.release.set()
            live.server.terminate()
            http.shutdown()
            http.server_close()
