"""Kernel-compatible panel routes at the site root; the workspace comes from the token.

Paths take no trailing slash, as the original kernel's did; one is accepted all the same.
"""

from django.urls import re_path

from workspaces.api import views

app_name = "kernel"

panels = views.KernelPanelViewSet.as_view({"get": "list", "post": "create"})
panel = views.KernelPanelViewSet.as_view({"get": "retrieve", "delete": "destroy"})
state = views.KernelPanelViewSet.as_view({"get": "state"})
trigger = views.KernelPanelViewSet.as_view({"post": "run_tool"})

PANEL_ID = r"(?P<panel_id>[^/]+)"

urlpatterns = [
    re_path(r"^panels/?$", panels, name="panels"),
    re_path(rf"^panels/{PANEL_ID}/?$", panel, name="panel"),
    re_path(rf"^panels/{PANEL_ID}/state/?$", state, name="panel-state"),
    re_path(rf"^panels/{PANEL_ID}/trigger/(?P<tool>[^/]+)/?$", trigger, name="panel-trigger"),
]
