"""The panel service's worker threads."""

from __future__ import annotations

import threading

import pytest

from workspaces.services import panels


@pytest.mark.django_db(transaction=True)  # the workers tidy their database connections around each call
async def test_workers_start_again_after_a_shutdown() -> None:
    @panels.in_worker
    def thread_name() -> str:
        return threading.current_thread().name

    before = await thread_name()
    panels.shutdown_workers()
    after = await thread_name()
    assert before.startswith("nexus-exec") and after.startswith("nexus-exec")
