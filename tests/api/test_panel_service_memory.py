"""What the panel service keeps in memory per panel stays bounded, however many panels pass through it."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.api.conftest import COUNTER, World
from workspaces.models import Panel
from workspaces.nxml import parse_nxml
from workspaces.services.panels import definition_of, definitions, get_panel, run_tool, segments


def test_a_panel_lock_lives_only_while_it_is_used() -> None:
    gc.collect()
    for pk in range(10_000, 12_000):
        with segments.local_lock(pk):
            assert segments.local_lock(pk) is segments.local_lock(pk)  # one lock per panel while in use
    gc.collect()
    assert not any(10_000 <= pk < 12_000 for pk in list(segments._local_locks))


def test_a_held_lock_is_the_one_every_thread_gets() -> None:
    held = segments.local_lock(42)
    seen: list[threading.Lock] = []
    with held:
        thread = threading.Thread(target=lambda: seen.append(segments.local_lock(42)))
        thread.start()
        thread.join(timeout=10)
    assert seen == [held]


def test_a_run_leaves_no_lock_behind(world: World) -> None:
    panel = get_panel(world.workspace, "counter")
    async_to_sync(run_tool)(panel, "increment", {}, actor="olivia")
    gc.collect()
    assert panel.pk not in segments._local_locks


def _panel_with_digest(tree: dict[str, Any], digest: str) -> Panel:
    return Panel(pk=1, panel_id="counter", definition=tree, definition_hash=digest)


@pytest.fixture
def counter_tree() -> dict[str, Any]:
    return parse_nxml(COUNTER).to_dict()


def test_the_definition_cache_keeps_the_recently_used_when_full(counter_tree: dict[str, Any]) -> None:
    definitions._definitions.clear()
    limit = definitions.MAX_CACHED_DEFINITIONS
    first = definition_of(_panel_with_digest(counter_tree, "digest-0"))
    for index in range(1, limit):
        definition_of(_panel_with_digest(counter_tree, f"digest-{index}"))
    assert definition_of(_panel_with_digest(counter_tree, "digest-0")) is first  # used again: now the newest
    definition_of(_panel_with_digest(counter_tree, "digest-overflow"))
    assert len(definitions._definitions) == limit
    assert definition_of(_panel_with_digest(counter_tree, "digest-0")) is first  # still cached, not re-parsed
    assert "digest-1" not in definitions._definitions  # the least recently used went
    definitions._definitions.clear()
