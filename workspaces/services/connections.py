"""Database connections of a thread that hands work to the panel service's own threads."""

from __future__ import annotations

from django.db import connection


def release_connection() -> None:
    """Give this thread's pooled connection back before waiting on the service.

    A request thread that has already read something (the user, the panel) holds a
    connection checked out of the pool; the service then runs its segments in worker
    threads that each need one. Kept, the idle connection halves what the pool can serve,
    and with as many requests as connections every worker waits for a connection that only
    a finished request frees (503 after DB_POOL_TIMEOUT). The thread takes a connection
    again when it next queries. Without a pool (SQLite) nothing changes.
    """
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()
