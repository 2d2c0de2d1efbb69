"""A workspace's panel limit holds against concurrent creations on a live server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import Live, example, start_live
from tests.support.servers import base_env, provision, scratch_database

LIMIT = 3
CREATORS = 9


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("panel-limit")
    with scratch_database(tmp) as database:
        # Provisioned before the server starts, as start_live does for its own users.
        erin = provision(base_env(DATABASE_URL=database.url), "erin", "limited", max_panels=LIMIT)
        nexus = start_live(tmp, database.url)
        nexus.tokens["erin"] = erin
        try:
            yield nexus
        finally:
            nexus.server.terminate()


def test_concurrent_creations_stop_at_the_workspace_limit(live: Live) -> None:
    start = threading.Barrier(CREATORS)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def create(index: int) -> None:
        start.wait(timeout=30)
        response = live.api("POST", "/api/v1/workspaces/limited/panels/", "erin",
                            json={"id": f"p{index}", "source": example("counter")})
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(CREATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [201] * LIMIT + [429] * (CREATORS - LIMIT), [r.text[:200] for r in answers]
    refused = [r.json()["error"] for r in answers if r.status_code == 429]
    assert all(error["code"] == "MAX_PANELS" and error["details"] == {"maxPanels": LIMIT} for error in refused)
    listed = live.api("GET", "/api/v1/workspaces/limited/panels/", "erin").json()
    assert (listed["totalPanels"], listed["maxPanels"]) == (LIMIT, LIMIT)


def test_the_owner_cannot_raise_the_limit(live: Live) -> None:
    response = live.api("PATCH", "/api/v1/workspaces/limited/", "erin", json={"maxPanels": 100_000})
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_REQUEST"
    assert live.api("GET", "/api/v1/workspaces/limited/", "erin").json()["maxPanels"] == LIMIT
