"""What one trigger costs the process: database statements and thread hops, pinned exactly.

A statement or a hop more on the hot path is a regression someone should notice; one fewer
is progress to record here. Statements are counted at Django's cursor (every thread, since a
segment runs in the service's worker pool, not in the caller's thread); hops are counted where
coroutines hand work to a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.db import connection
from django.db.backends.utils import CursorWrapper

from tests.api.conftest import World
from workspaces.services import activity, publish
from workspaces.services.panels import get_panel, run_tool, workers


@dataclass
class Recorder:
    statements: list[tuple[str, str]] = field(default_factory=list)  # (thread name, SQL)
    worker_hops: int = 0  # work handed to the panel service's worker pool (in_worker)
    sync_hops: int = 0  # every sync_to_async / database_sync_to_async call, in_worker's included
    loop_handoffs: int = 0  # messages handed from a worker thread to the event loop for the channel layer
    activity_handoffs: int = 0  # runs queued for the activity log's writer thread
    recording: bool = False

    def hot_path(self) -> list[str]:
        """Statements of the trigger itself, not of the activity log's writer thread."""
        return [sql for thread, sql in self.statements if not thread.startswith("nexus-activity")]

    def activity_log(self) -> list[str]:
        return [sql for thread, sql in self.statements if thread.startswith("nexus-activity")]


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(max_workers=4, thread_name_prefix="nexus-exec")
        self.recorder = recorder

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.recorder.recording:
            self.recorder.worker_hops += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    lock = threading.Lock()
    execute, executemany = CursorWrapper._execute, CursorWrapper._executemany

    def note(sql: str) -> None:
        if recorder.recording:
            with lock:
                recorder.statements.append((threading.current_thread().name, sql))

    def counted_execute(self: CursorWrapper, sql: str, params: Any, *rest: Any) -> Any:
        note(sql)
        return execute(self, sql, params, *rest)

    def counted_executemany(self: CursorWrapper, sql: str, param_list: Any, *rest: Any) -> Any:
        note(sql)
        return executemany(self, sql, param_list, *rest)

    call = SyncToAsync.__call__

    async def counted_call(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        if recorder.recording:
            recorder.sync_hops += 1
        return await call(self, *args, **kwargs)

    send, submit = publish.send, activity.submit

    def counted_send(group: str, message: dict[str, Any]) -> None:
        if recorder.recording:
            recorder.loop_handoffs += 1
        send(group, message)

    def counted_submit(run: activity.FinishedRun) -> None:
        if recorder.recording:
            recorder.activity_handoffs += 1
        submit(run)

    executor = CountingExecutor(recorder)
    monkeypatch.setattr(publish, "send", counted_send)
    monkeypatch.setattr(activity, "submit", counted_submit)
    monkeypatch.setattr(CursorWrapper, "_execute", counted_execute)
    monkeypatch.setattr(CursorWrapper, "_executemany", counted_executemany)
    monkeypatch.setattr(SyncToAsync, "__call__", counted_call)
    monkeypatch.setattr(workers, "_executor", executor)
    yield recorder
    executor.shutdown(wait=True)


def _trigger(world: World, recorder: Recorder) -> Any:
    panel = get_panel(world.workspace, "counter")
    activity.flush()
    recorder.recording = True
    outcome = async_to_sync(run_tool)(panel, "increment", {"by": 1}, actor="olivia")
    activity.flush()
    recorder.recording = False
    assert outcome.status == "success", outcome.error
    return outcome


def _warm_trigger(world: World, recorder: Recorder) -> Any:
    """A second trigger, the one counted: the definition is cached and the handler compiled by the first."""
    _trigger(world, recorder)
    recorder.statements.clear()
    recorder.worker_hops = recorder.sync_hops = recorder.loop_handoffs = recorder.activity_handoffs = 0
    return _trigger(world, recorder)


# The statements of one warm trigger of the counter, in order, by database.
HOT_PATH = {
    # SQLite: the first attempt runs optimistically (docs/architecture.md): it reads the state
    # without a lock, runs the handler, then takes the write lock and stores the new state only
    # if state_version is still the one it read (the compare-and-set is the UPDATE's WHERE).
    # COMMIT goes through the driver, not a cursor, so it is not listed.
    "sqlite": [
        "SELECT state, state_version FROM workspaces_panel WHERE id = %s",
        "BEGIN IMMEDIATE",
        "UPDATE workspaces_panel SET state = %s, state_version = %s, last_activity = %s, updated_at = %s "
        "WHERE id = %s AND state_version = %s",
    ],
    # PostgreSQL: one locked segment: the row is read FOR UPDATE and written back in the same
    # transaction (BEGIN and COMMIT go through the driver).
    "postgresql": [
        "SELECT state, state_version FROM workspaces_panel WHERE id = %s FOR UPDATE",
        "UPDATE workspaces_panel SET state = %s::jsonb, state_version = %s, last_activity = %s, "
        "updated_at = %s WHERE id = %s AND state_version = %s",
    ],
}


def test_one_trigger_costs_these_statements(world: World, recorder: Recorder) -> None:
    outcome = _warm_trigger(world, recorder)
    assert outcome.return_value == 2
    assert recorder.hot_path() == HOT_PATH[connection.vendor]
    assert len(recorder.hot_path()) == {"sqlite": 3, "postgresql": 2}[connection.vendor]
    # Off the trigger path, the activity log's writer stores the run: the INSERT and a look for
    # the 200th newest run of the panel (older ones are pruned; with fewer, no DELETE follows),
    # in a transaction of its own (SQLite shows its BEGIN).
    writer = [sql.split(" (", 1)[0] if sql.startswith("INSERT") else sql for sql in recorder.activity_log()]
    assert writer == [
        *(["BEGIN IMMEDIATE"] if connection.vendor == "sqlite" else []),
        'INSERT INTO "workspaces_panelrun"',
        'SELECT "workspaces_panelrun"."id" AS "id" FROM "workspaces_panelrun" WHERE '
        '"workspaces_panelrun"."panel_id" = %s ORDER BY 1 DESC LIMIT 1 OFFSET 199',
    ]


def test_one_trigger_costs_these_thread_hops(world: World, recorder: Recorder) -> None:
    _warm_trigger(world, recorder)
    # Awaited: one hop to the worker pool runs the whole segment (read, sandbox, apply, publish,
    # commit); the definition comes from the cache on the event loop, so no other sync_to_async.
    assert (recorder.worker_hops, recorder.sync_hops) == (1, 1)
    # Not awaited: the commit message handed back to the event loop (publish.send), and the run
    # queued for the activity log's writer thread.
    assert (recorder.loop_handoffs, recorder.activity_handoffs) == (1, 1)
