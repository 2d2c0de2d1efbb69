"""This process's identity, as the owner of the rows it works on (host name, pid and a random part)."""

from __future__ import annotations

import os
import secrets
import socket

_identity: tuple[int, str] | None = None


def process_identity() -> str:
    """One name per process, new after a fork: ``host:pid:random``."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()[:100]}:{pid}:{secrets.token_hex(6)}")
    return _identity[1]
