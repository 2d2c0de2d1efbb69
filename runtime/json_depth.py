"""How deeply JSON data nests, and the limit every JSON input is held to.

Deep nesting costs stack in every recursive consumer of the data (Python's json module,
the guest's JSON parser, serialisers), so request bodies, WebSocket frames and the values
extension calls resume handlers with are refused beyond ``MAX_JSON_DEPTH`` levels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_JSON_DEPTH = 64


class JSONTooDeep(ValueError):
    """JSON data nested deeper than allowed; the message names the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON is nested deeper than {limit} levels")
        self.limit = limit


def exceeds_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when objects and arrays in ``value`` nest more than ``limit`` levels (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list | tuple) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def loads(text: str | bytes, limit: int = MAX_JSON_DEPTH, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads`` that raises ``JSONTooDeep`` for documents nested deeper than ``limit``.

    A document with no more than ``limit`` brackets cannot nest deeper, so the common small
    body costs one byte count; only bracket-heavy documents are walked after parsing.
    """
    if _brackets(text) <= limit:
        return json.loads(text, parse_constant=parse_constant)
    try:
        value = json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        raise JSONTooDeep(limit) from None
    if isinstance(value, dict | list) and exceeds_depth(value, limit):
        raise JSONTooDeep(limit)
    return value


def _brackets(text: str | bytes) -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")
