"""The channel layer used without Redis: Channels' in-memory layer, with a leaner group send.

Channels starts one task per group member for every group message and gathers them; an
in-memory send never waits, so sending to each member in turn does the same work without
the tasks. Used when ``REDIS_URL`` is unset (development, single process).
"""

from __future__ import annotations

from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):  # type: ignore[misc]
    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass
