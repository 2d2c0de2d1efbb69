"""SIGTERM: running handlers finish, sockets are sent away (1012) after their answers, the process exits 0."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import SLOW_PANEL, receive_until, start_live
from tests.support.servers import manage, scratch_database
from workspaces.consumers import CLOSE_RECONNECT

pytestmark = pytest.mark.slow


def test_sigterm_finishes_the_running_handler_then_sends_the_socket_away(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as database:
        live = start_live(tmp_path, database.url, SHUTDOWN_GRACE_SECONDS="10")
        try:
            live.create("slow", SLOW_PANEL)

            async def scenario() -> tuple[dict[str, object], int]:
                socket = await live.connect("slow")
                await socket.send(json.dumps({"type": "TRIGGER", "tool": "spin", "args": {"ms": 1500},
                                              "requestId": "last"}))
                await asyncio.sleep(0.4)
                live.server.process.terminate()  # SIGTERM
                result = await receive_until(socket, "RESULT", timeout=20)
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(10):
                        await asyncio.wait_for(socket.recv(), 20)
                assert closed.value.rcvd is not None
                return result, closed.value.rcvd.code

            result, code = asyncio.run(scenario())
            assert result["status"] == "success"
            assert code == CLOSE_RECONNECT
            assert live.server.process.wait(30) == 0
            kept = manage("shell", "-c", "from workspaces.models import PanelRun; "
                          "print(list(PanelRun.objects.values_list('handler', 'status')))", env=live.env)
            assert "('spin', 'success')" in kept.stdout  # the run that finished while draining is logged
        finally:
            live.server.kill()
