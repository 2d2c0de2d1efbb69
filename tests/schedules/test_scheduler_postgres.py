"""Two scheduler processes on one PostgreSQL database: each tick runs once, and on when one is killed."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import using_postgres
from tests.schedules.conftest import TICKER
from tests.support.servers import ROOT, Database, base_env, manage, provision

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(not using_postgres(), reason="needs DATABASE_URL=postgres://…")]

EVERY_2S = (TICKER.replace('every="1s" args=\'{"by": 2}\'', 'every="2s" args=\'{"by": 1}\'')
            .replace('<Schedule name="failing" tool="fail" every="1s" />', ""))
CREATE = """
from asgiref.sync import async_to_sync
from workspaces.models import Workspace
from workspaces.services.panels import create_panel
async_to_sync(create_panel)(Workspace.objects.get(slug="bench"), {source!r}, panel_id="ticker")
"""


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "manage.py", "nexus_scheduler"], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def query(url: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def counter(url: str) -> int:
    return int(query(url, "SELECT (state->>'n')::int FROM workspaces_panel WHERE panel_id = 'ticker'")[0][0])


def test_two_processes_run_each_tick_once_and_survive_a_kill(scratch_db: Database, tmp_path: Path) -> None:
    env = base_env(DATABASE_URL=scratch_db.url, SCHEDULE_MIN_INTERVAL="1s")
    provision(env)
    manage("shell", "-c", CREATE.format(source=EVERY_2S), env=env)
    processes = [start_scheduler(env, tmp_path / f"scheduler-{i}.log") for i in range(2)]
    try:
        time.sleep(4)  # both warmed up and looping
        assert all(p.poll() is None for p in processes), [p.poll() for p in processes]
        start = counter(scratch_db.url)
        time.sleep(10)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(10)
        time.sleep(10)
        grown = counter(scratch_db.url) - start
        assert processes[1].poll() is None
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    logs = "\n".join(path.read_text(errors="replace") for path in tmp_path.glob("scheduler-*.log"))
    assert 9 <= grown <= 11, (grown, logs[-3000:])
    starts = [row[0] for row in query(scratch_db.url, "SELECT started_at FROM workspaces_panelrun "
                                      "WHERE actor = 'schedule' ORDER BY started_at")]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps and min(gaps) > 1.0, ("a tick ran twice", gaps)
    assert max(gaps) < 4.5, ("ticks stopped after the kill", gaps)
    runs, = query(scratch_db.url, "SELECT runs FROM workspaces_schedule WHERE name = 'tick'")[0]
    assert counter(scratch_db.url) - 1 <= runs <= counter(scratch_db.url)
