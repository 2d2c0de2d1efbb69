"""The in-memory channel layer used without Redis."""

from __future__ import annotations

from channels.layers import get_channel_layer

from nexus.layers import InMemoryChannelLayer


def test_settings_pick_redis_or_the_project_layer(settings) -> None:  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    if settings.NEXUS.REDIS_URL:
        assert type(layer).__module__ == "channels_redis.core"
    else:
        assert isinstance(layer, InMemoryChannelLayer)


async def test_group_send_reaches_every_member_past_a_full_one() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    names = [await layer.new_channel() for _ in range(3)]
    for name in names:
        await layer.group_add("panel", name)
    await layer.send(names[1], {"type": "filler"})  # this member's queue is now full
    await layer.group_send("panel", {"type": "panel.commit", "n": 1})
    assert await layer.receive(names[0]) == {"type": "panel.commit", "n": 1}
    assert await layer.receive(names[1]) == {"type": "filler"}
    assert await layer.receive(names[2]) == {"type": "panel.commit", "n": 1}
    await layer.group_discard("panel", names[2])
    await layer.group_send("panel", {"type": "panel.commit", "n": 2})
    assert await layer.receive(names[0]) == {"type": "panel.commit", "n": 2}
    assert names[2] not in layer.channels
