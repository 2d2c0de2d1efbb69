"""How many WebSocket clients watch each panel, across every server process.

Calls may block on Redis for up to a second, so async code runs them in a thread.
With Redis configured the counts live in a Redis hash shared by all processes (each process
keeps its own field, so a crashed process's count can be told apart and expires with it);
without Redis they are this process's own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
_local: Counter[str] = Counter()
_lock = threading.Lock()
_PROCESS = f"{socket.gethostname()}:{os.getpid()}"
_TTL_S = 3600


_client: Any = None


def _redis() -> Any:
    """One thread-safe client (with its own connection pool) per process."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.NEXUS.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _client


def _key(workspace_slug: str, panel_id: str) -> str:
    return f"{settings.NEXUS.REDIS_PREFIX}:clients:{workspace_slug}:{panel_id}"


def _change(workspace_slug: str, panel_id: str, delta: int) -> None:
    key = _key(workspace_slug, panel_id)
    with _lock:
        _local[key] += delta
        if _local[key] <= 0:
            del _local[key]
    if settings.NEXUS.redis_enabled:
        try:
            client = _redis()
            pipe = client.pipeline()
            pipe.hincrby(key, _PROCESS, delta)
            pipe.expire(key, _TTL_S)
            pipe.execute()
        except Exception as exc:  # advisory only: never break a socket over it
            logger.debug("presence update failed: %s", exc)


def joined(workspace_slug: str, panel_id: str) -> None:
    _change(workspace_slug, panel_id, 1)


def left(workspace_slug: str, panel_id: str) -> None:
    _change(workspace_slug, panel_id, -1)


def client_count(workspace_slug: str, panel_id: str) -> int:
    key = _key(workspace_slug, panel_id)
    if settings.NEXUS.redis_enabled:
        try:
            values = _redis().hvals(key)
            return max(0, sum(int(v) for v in values))
        except Exception as exc:
            logger.debug("presence read failed: %s", exc)
    with _lock:
        return max(0, _local.get(key, 0))
