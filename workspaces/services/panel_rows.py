"""The hot path's own SQL for a panel's state: one short statement per step, no ORM overhead.

A trigger reads and writes a single row several times; the ORM's query building costs more
than the database does there. Everything else uses the ORM.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.utils import timezone

from workspaces.models import Panel

_TABLE = Panel._meta.db_table


def _json_param() -> str:
    return "%s::jsonb" if connection.vendor == "postgresql" else "%s"


def _decode(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    decoded = json.loads(value) if value else {}
    return decoded if isinstance(decoded, dict) else {}


def read_state(panel_pk: int, lock: bool = False) -> tuple[dict[str, Any], int] | None:
    """(state, state_version); with ``lock`` the row stays locked until the transaction ends."""
    suffix = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT state, state_version FROM {_TABLE} WHERE id = %s{suffix}", [panel_pk])  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        return None
    return _decode(row[0]), int(row[1])


def write_state(panel_pk: int, state: dict[str, Any], version: int, expected: int) -> bool:
    """Store the state as ``version`` if the row is still at ``expected``; False when it moved on."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET state = {_json_param()}, state_version = %s, last_activity = %s, "  # noqa: S608
            "updated_at = %s WHERE id = %s AND state_version = %s",
            [json.dumps(state), version, now, now, panel_pk, expected],
        )
        return bool(cursor.rowcount == 1)
