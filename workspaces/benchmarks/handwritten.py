"""A counter the way a Django developer would write it by hand: the yardstick of Nexus's throughput.

One Channels consumer per socket on ``ws/counter/<name>/``: each ``TRIGGER`` frame bumps the
counter's row in one transaction, broadcasts the new value to the counter's group
(``PATCH``) and answers ``RESULT``. Same SQLite settings as Nexus (WAL, ``synchronous=NORMAL``,
``BEGIN IMMEDIATE``), the in-memory channel layer, no sandbox, no capabilities, no versions.
``HANDWRITTEN_CONN_MAX_AGE`` is Django's ``CONN_MAX_AGE``: 0 (Django's default) reconnects for
every message, as the naive consumer does; 60 keeps the connection, as Nexus does.

Served by daphne (``daphne workspaces.benchmarks.handwritten:application``) with
``HANDWRITTEN_DB`` naming a SQLite file with the table ``counter (name, value)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("HANDWRITTEN_DB", "handwritten.sqlite3"),
                # 60 keeps the connection, as Nexus does; Django's default, 0, opens one for every
                # message (database_sync_to_async closes it after each call): the bench runs both.
                "CONN_MAX_AGE": int(os.environ.get("HANDWRITTEN_CONN_MAX_AGE", "0")),
                "OPTIONS": {
                    "timeout": 30,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.db import connection, transaction
from django.urls import path


@database_sync_to_async
def bump(name: str) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE counter SET value = value + 1 WHERE name = %s", [name])
        cursor.execute("SELECT value FROM counter WHERE name = %s", [name])
        return int(cursor.fetchone()[0])


class CounterConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.counter = self.scope["url_route"]["kwargs"]["name"]
        self.group = f"counter.{self.counter}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "CONNECTED", "counter": self.counter}))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        value = await bump(self.counter)
        await self.channel_layer.group_send(self.group, {"type": "counter.changed", "value": value})
        await self.send(text_data=json.dumps(
            {"type": "RESULT", "requestId": frame.get("requestId"), "status": "success", "value": value}))

    async def counter_changed(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": "PATCH", "value": event["value"]}))


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/counter/<str:name>/", CounterConsumer.as_asgi())])}
)
