"""WebSocket routes."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path, re_path

from workspaces.consumers import PanelConsumer

PANEL_ID = r"(?P<panel_id>[A-Za-z0-9_-]{1,64})"

websocket_urlpatterns = [
    re_path(r"^ws/workspaces/(?P<workspace>[-a-zA-Z0-9_]+)/panels/" + PANEL_ID + r"/$", PanelConsumer.as_asgi()),
    re_path(r"^panels/" + PANEL_ID + r"/ws/?$", PanelConsumer.as_asgi()),
]


def websocket_application(extra_routes: list[Any] | None = None) -> Any:
    return AuthMiddlewareStack(URLRouter([*(extra_routes or []), *websocket_urlpatterns]))


__all__ = ["path", "websocket_application", "websocket_urlpatterns"]
