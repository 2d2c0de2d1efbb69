"""JSON that enters from clients (REST bodies, WebSocket frames), held to the nesting limit.

The limit is the runtime's (``runtime.json_depth``), which applies the same rule to the
values extension calls resume handlers with.
"""

from __future__ import annotations

from runtime.json_depth import MAX_JSON_DEPTH, JSONTooDeep, loads

__all__ = ["MAX_JSON_DEPTH", "JSONTooDeep", "loads"]
