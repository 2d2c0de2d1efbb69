"""Fixtures of the deployment tests: rendered overlays and a guard against network use."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

# The helpers sit next to the tests; make them importable in any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import OVERLAYS, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """The base and each overlay, rendered once per session by `kubectl kustomize`."""
    return {name: render(path) for name, path in OVERLAYS.items()}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to open a network connection (schemas must come from disk)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected network access: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
