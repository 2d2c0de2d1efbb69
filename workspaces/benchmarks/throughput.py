"""ws.throughput_vs_handwritten: Nexus against a hand-written Channels counter, same run, same load.

50 sockets, one per counter, each triggering in a loop: against the hand-written consumer
(``workspaces.benchmarks.handwritten``, one daphne process, a SQLite file) with persistent
connections (``CONN_MAX_AGE`` 60, as Nexus has: the baseline), against the same with Django's
default ``CONN_MAX_AGE`` 0 (a connection per message: ``handwritten_reconnecting``, the naive
consumer, which Nexus beats by far), and against Nexus on 50
counter panels (one ``nexus_serve`` process, the default pool). They take turns for a few
rounds of fixed length, so that a neighbour's load on the machine falls on all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workspaces.benchmarks.harness import (
    ROOT,
    base_env,
    free_port,
    provision,
    scratch_database,
    start_server,
    unique_prefix,
)
from workspaces.benchmarks.live import Deployment, _client_loop
from workspaces.benchmarks.report import case

CLIENTS = 50
TARGET_RATIO = 0.8


def create_counters(file: Path, names: list[str]) -> None:
    """The hand-written app's table, one row at 0 per counter."""
    with contextlib.closing(sqlite3.connect(file)) as db, db:
        db.execute("CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.executemany("INSERT INTO counter (name, value) VALUES (?, 0)", [(name,) for name in names])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counter_total(file: Path) -> int:
    with contextlib.closing(sqlite3.connect(file)) as db:
        return int(db.execute("SELECT COALESCE(SUM(value), 0) FROM counter").fetchone()[0])


@contextlib.contextmanager
def handwritten_server(
    folder: Path, names: list[str], conn_max_age: int, wait_s: float = 30
) -> Iterator[tuple[str, Path, int]]:
    """The hand-written app under daphne on a free loopback port: (ws base URL, database file, pid)."""
    database = folder / f"handwritten-{conn_max_age}.sqlite3"
    create_counters(database, names)
    port = free_port()
    env = {key: value for key, value in base_env().items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(HANDWRITTEN_DB=str(database), HANDWRITTEN_CONN_MAX_AGE=str(conn_max_age))
    log_path = folder / f"handwritten-{conn_max_age}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
         "workspaces.benchmarks.handwritten:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for_port(process, port, wait_s, log_path)
        yield f"ws://127.0.0.1:{port}", database, process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _wait_for_port(process: subprocess.Popen[str], port: int, wait_s: float, log: Path) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the hand-written server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"the hand-written server did not listen within {wait_s} s:\n{log.read_text()}")


@contextlib.contextmanager
def default_nexus(folder: Path) -> Iterator[Deployment]:
    """One Nexus process with the pool a default process gets (MAX_INSTANCES from the memory budget)."""
    with scratch_database(folder) as database:
        env = base_env(DATABASE_URL=database.url, MAX_PANELS="1000", MIN_INSTANCES="2", REDIS_URL="",
                       REDIS_PREFIX=unique_prefix())
        env.pop("MAX_INSTANCES", None)
        token = provision(env, max_panels=1000)
        server = start_server(env, folder)
        try:
            yield Deployment([server], token)
        finally:
            server.terminate()


async def _rate(urls: list[str], seconds: float) -> tuple[int, float, list[str]]:
    """Triggers answered with success, the time they took, and the errors, for one timed round."""
    counts: list[int] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client_loop(url, deadline, counts, errors) for url in urls))
    return len(counts), time.perf_counter() - started, errors


def ws_throughput_vs_handwritten(quick: bool) -> dict[str, Any]:
    rounds, seconds, warm_up = (2, 2.0, 1.0) if quick else (3, 5.0, 2.0)
    names = [f"tp-{index}" for index in range(CLIENTS)]
    sides = ("handwritten", "handwritten_reconnecting", "nexus")
    totals: dict[str, list[float]] = {side: [0, 0.0, 0.0] for side in sides}  # triggers, seconds, CPU s
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nexus-handwritten-") as folder, \
            handwritten_server(Path(folder), names, conn_max_age=60) as (persistent_url, persistent_db, persistent), \
            handwritten_server(Path(folder), names, conn_max_age=0) as (naive_url, naive_db, naive), \
            default_nexus(Path(folder)) as dep:
        for name in names:
            dep.create_panel(name)
        urls = {
            "handwritten": [f"{persistent_url}/ws/counter/{name}/" for name in names],
            "handwritten_reconnecting": [f"{naive_url}/ws/counter/{name}/" for name in names],
            "nexus": [dep.ws(name) for name in names],
        }
        pids = {"handwritten": persistent, "handwritten_reconnecting": naive, "nexus": dep.servers[0].process.pid}
        # Warm-up first (compiled handlers, warm instances, open database connections: not measured).
        warmed = {side: asyncio.run(_rate(side_urls, warm_up))[0] for side, side_urls in urls.items()}
        for _ in range(rounds):
            for side, side_urls in urls.items():
                cpu_before = cpu_seconds(pids[side])
                count, took, side_errors = asyncio.run(_rate(side_urls, seconds))
                totals[side][0] += count
                totals[side][1] += took
                totals[side][2] += cpu_seconds(pids[side]) - cpu_before
                errors += [f"{side}: {error}" for error in side_errors]
        # Every success a hand-written app answered is a row bump it committed.
        bumps_committed = all(
            counter_total(database) == warmed[side] + totals[side][0]
            for side, database in (("handwritten", persistent_db), ("handwritten_reconnecting", naive_db))
        )
    rates = {side: totals[side][0] / totals[side][1] for side in sides}
    # Server CPU per trigger: steadier than the rates on a machine shared with other work.
    cpu_ms = {side: round(totals[side][2] * 1000 / max(1, totals[side][0]), 3) for side in sides}
    return case(
        rates["nexus"], "triggers/s", baseline=rates["handwritten"], target=TARGET_RATIO, higher_is_better=True,
        handwritten=round(rates["handwritten"], 1),
        handwritten_reconnecting=round(rates["handwritten_reconnecting"], 1),
        ratio_reconnecting=round(rates["nexus"] / rates["handwritten_reconnecting"], 4),
        clients=CLIENTS, rounds=rounds, round_seconds=seconds, errors=len(errors),
        first_error=errors[0] if errors else None, handwritten_bumps_committed=bumps_committed,
        cpu_ms_per_trigger=cpu_ms["nexus"], handwritten_cpu_ms_per_trigger=cpu_ms["handwritten"],
        handwritten_reconnecting_cpu_ms_per_trigger=cpu_ms["handwritten_reconnecting"],
    )
