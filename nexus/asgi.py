"""ASGI entry point: Django for HTTP (MCP under /mcp/), Channels consumers for WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus.settings")

from nexus.handlers import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from workspaces.mcp.app import with_mcp  # noqa: E402
from workspaces.routing import websocket_application  # noqa: E402

extra_routes = []
if settings.NEXUS.NEXUS_BENCH_ECHO:
    from workspaces.benchmarks.echo import EchoConsumer

    extra_routes.append(re_path(r"^ws/bench/echo/$", EchoConsumer.as_asgi()))

application = ProtocolTypeRouter({"http": with_mcp(django_asgi_app), "websocket": websocket_application(extra_routes)})
