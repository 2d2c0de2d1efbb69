"""Kernel-compatible routes at the site root: auth, and panels in the workspace of the token.

Paths take no trailing slash, as the original kernel's did; the same path with a slash is
accepted too (served by an undocumented twin so the schema lists each route once).
"""

from typing import Any

from django.urls import URLPattern, path

from workspaces.api import views

app_name = "kernel"


def routes(viewset: Any, suffix: str, name_suffix: str) -> list[URLPattern]:
    return [
        path(f"panels{suffix}", viewset.as_view({"get": "list", "post": "create"}),
             name=f"panels{name_suffix}"),
        path(f"panels/from-nxml{suffix}", viewset.as_view({"post": "from_nxml"}),
             name=f"panels-from-nxml{name_suffix}"),
        path(f"panels/<str:panel_id>{suffix}", viewset.as_view({"get": "retrieve", "delete": "destroy"}),
             name=f"panel{name_suffix}"),
        path(f"panels/<str:panel_id>/state{suffix}", viewset.as_view({"get": "state"}),
             name=f"panel-state{name_suffix}"),
        path(f"panels/<str:panel_id>/trigger/<str:tool>{suffix}", viewset.as_view({"post": "run_tool"}),
             name=f"panel-trigger{name_suffix}"),
    ]


urlpatterns = [
    path("auth/token", views.KernelTokenView.as_view(), name="token"),
    path("auth/me", views.KernelMeView.as_view(), name="me"),
    *routes(views.KernelPanelViewSet, "", ""),
    *routes(views.KernelPanelSlashViewSet, "/", "-slash"),
]
