"""The panel consumer dispatches frames and group messages without a thread hop of its own."""

from __future__ import annotations

from typing import Any

import pytest

from workspaces.consumers import PanelConsumer


async def test_dispatch_skips_the_per_message_connection_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden() -> None:
        raise AssertionError("dispatch must not hop to a thread to close connections")

    monkeypatch.setattr("channels.consumer.aclose_old_connections", forbidden)
    seen: list[dict[str, Any]] = []
    consumer = PanelConsumer()

    async def handler(message: dict[str, Any]) -> None:
        seen.append(message)

    consumer.panel_changed = handler  # type: ignore[method-assign]
    await consumer.dispatch({"type": "panel.changed"})
    assert seen == [{"type": "panel.changed"}]
    with pytest.raises(ValueError, match=r"No handler for message type nothing\.here"):
        await consumer.dispatch({"type": "nothing.here"})
