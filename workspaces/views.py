"""Browser pages: the workspaces a user belongs to, their panels, and a live panel."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from workspaces import access
from workspaces.access import AccessDenied, Principal
from workspaces.models import Panel, Workspace
from workspaces.presenters import panel_detail, panel_summary, websocket_url


def _workspace_for(request: HttpRequest, slug: str) -> Workspace:
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise Http404("No such workspace")
    try:
        access.check(Principal(user=request.user), workspace, access.PANEL_READ)
    except AccessDenied as denied:
        raise Http404("No such workspace") from denied
    return workspace


@login_required
def workspace_list(request: HttpRequest) -> HttpResponse:
    workspaces = access.visible_workspaces(Principal(user=request.user)).order_by("name")
    return render(request, "workspaces/workspace_list.html", {"workspaces": workspaces})


@login_required
def panel_list(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = _workspace_for(request, slug)
    panels = [panel_summary(panel) for panel in workspace.panels.order_by("title", "panel_id")]
    return render(request, "workspaces/panel_list.html", {"workspace": workspace, "panels": panels})


@login_required
def panel_page(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    workspace = _workspace_for(request, slug)
    panel = Panel.objects.select_related("workspace").filter(workspace=workspace, panel_id=panel_id).first()
    if panel is None:
        raise Http404("No such panel")
    bootstrap = {
        "panel": panel_detail(panel),
        "wsUrl": websocket_url(request, panel),
        "stateUrl": reverse("panel-page-state", args=[workspace.slug, panel.panel_id]),
    }
    return render(request, "workspaces/panel.html", {"workspace": workspace, "panel": panel, "bootstrap": bootstrap})


@login_required
def panel_state(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """Same-origin state for a page that noticed a gap in state versions."""
    from django.http import JsonResponse

    workspace = _workspace_for(request, slug)
    panel = Panel.objects.filter(workspace=workspace, panel_id=panel_id).first()
    if panel is None:
        raise Http404("No such panel")
    return JsonResponse({"panelId": panel.panel_id, "state": panel.state, "stateVersion": panel.state_version})
