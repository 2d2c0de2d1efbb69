"""4 threads x 100 REST triggers of increment on one panel end at exactly 400.

Each thread has its own client (and so its own database connection); the panel service
serializes the executions per panel. Runs on SQLite, and on PostgreSQL when DATABASE_URL
points there.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection

from tests.api.conftest import World

THREADS = 4
TRIGGERS = 100
DEADLINE_S = 240


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_parallel_triggers_lose_no_update(world: World, api_client_for: Any) -> None:
    url = "/api/v1/workspaces/ws/panels/counter/tools/increment/"
    failures: list[Any] = []
    started = time.monotonic()

    def hammer() -> None:
        client = api_client_for(world.editor)
        try:
            for _ in range(TRIGGERS):
                if time.monotonic() - started > DEADLINE_S:
                    failures.append("deadline passed")
                    return
                response = client.post(url, {"args": {"by": 1}}, format="json")
                if response.status_code != 200 or response.json()["status"] != "success":
                    failures.append((response.status_code, response.content[:300]))
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_S + 30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    final = api_client_for(world.viewer).get("/api/v1/workspaces/ws/panels/counter/state/").json()
    assert final["state"] == {"count": THREADS * TRIGGERS, "double": 2 * THREADS * TRIGGERS}
    assert final["stateVersion"] == THREADS * TRIGGERS
