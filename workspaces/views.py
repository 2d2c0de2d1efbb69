"""Browser pages: the workspaces a user belongs to, their panels, and a live panel."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from workspaces import access
from workspaces.access import AccessDenied, Principal
from workspaces.api.throttling import FailedLogins, client_address, login_name
from workspaces.forms import WorkspaceCreateForm
from workspaces.models import Membership, Panel, PanelStatus, Workspace
from workspaces.presenters import iso, panel_detail, websocket_url
from workspaces.services import workspaces as workspace_service
from workspaces.services.panels import ServiceError

View = Callable[..., HttpResponse]

# Badge colours of the shared stylesheet for each panel status.
STATUS_TONES: dict[str, str] = {
    PanelStatus.RUNNING: "success",
    PanelStatus.INITIALIZING: "info",
    PanelStatus.STOPPED: "warn",
    PanelStatus.ERROR: "error",
}


def page_login_required(view: View) -> View:
    """Like ``login_required``, but with authentication switched off every visitor is the local user."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.NEXUS.AUTH_ENABLED:
            # The pages then behave as the API does for the same server: one local owner.
            request.user = cast(Any, access.local_user())
        elif not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def activity_label(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    now = now or timezone.now()
    if (now - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when, now, depth=1)} ago"


@dataclass(frozen=True)
class PanelRow:
    id: str
    title: str
    status: str
    status_tone: str
    last_activity: str | None
    last_activity_label: str

    @classmethod
    def of(cls, panel: Panel, now: datetime) -> PanelRow:
        return cls(
            id=panel.panel_id,
            title=panel.title or panel.panel_id,
            status=panel.status,
            status_tone=STATUS_TONES.get(panel.status, "info"),
            last_activity=iso(panel.last_activity),
            last_activity_label=activity_label(panel.last_activity, now),
        )


def _workspace_for(request: HttpRequest, slug: str) -> Workspace:
    """The workspace, or 404 for anyone who may not read it: strangers learn nothing about it."""
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise Http404("No such workspace")
    try:
        access.check(Principal(user=request.user), workspace, access.PANEL_READ)
    except AccessDenied as denied:
        raise Http404("No such workspace") from denied
    return workspace


def _panel_for(workspace: Workspace, panel_id: str) -> Panel:
    panel = Panel.objects.select_related("workspace").filter(workspace=workspace, panel_id=panel_id).first()
    if panel is None:
        raise Http404("No such panel")
    return panel


class LoginView(auth_views.LoginView):
    """Django's login page, under the failed-login rule of the token endpoint (429 while throttled)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username, address = login_name(request.POST), client_address(request)
        delay = FailedLogins().retry_after(username, address)
        if delay is None:
            return super().post(request, *args, **kwargs)
        # An unbound form: the password is not even checked while the rule holds.
        form = self.get_form_class()(request, initial={"username": username})
        response = self.render_to_response(self.get_context_data(form=form, retry_after=delay), status=429)
        response["Retry-After"] = str(delay)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        FailedLogins().record_failure(login_name(self.request.POST), client_address(self.request))
        return super().form_invalid(form)


@page_login_required
def workspace_list(request: HttpRequest) -> HttpResponse:
    """The user's workspaces, and a form to create one (posted here; the user becomes its owner)."""
    form = WorkspaceCreateForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            workspace = workspace_service.create_workspace(
                form.cleaned_data["slug"], form.cleaned_data["name"], owner=request.user
            )
        except ServiceError as exc:  # created by someone else since the form was checked
            form.add_error("slug", exc.message)
        else:
            return redirect("panel-list", workspace.slug)
    workspaces = (
        access.visible_workspaces(Principal(user=request.user))
        .annotate(panel_count=Count("panels", distinct=True))
        .order_by("name", "slug")
    )
    roles = dict(Membership.objects.filter(user=cast(Any, request.user)).values_list("workspace_id", "role"))
    rows = [{"workspace": workspace, "role": roles.get(workspace.pk, "")} for workspace in workspaces]
    return render(request, "workspaces/workspace_list.html", {"rows": rows, "form": form},
                  status=400 if form.is_bound else 200)


@page_login_required
def panel_list(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = _workspace_for(request, slug)
    now = timezone.now()
    panels = [PanelRow.of(panel, now) for panel in workspace.panels.order_by("title", "panel_id")]
    return render(request, "workspaces/panel_list.html", {"workspace": workspace, "panels": panels})


def _panel_controls(request: HttpRequest, workspace: Workspace, panel: Panel) -> dict[str, Any]:
    """Whether the viewer may start the panel, and how (the REST route, with the session's CSRF token)."""
    try:
        access.check(Principal(user=request.user), workspace, access.PANEL_EXECUTE)
    except AccessDenied:
        return {"canStart": False}
    return {
        "canStart": True,
        "startUrl": reverse("api:panel-start", args=[workspace.slug, panel.panel_id]),
        "csrfToken": get_token(request),
    }


@page_login_required
def panel_page(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    bootstrap = {
        "panel": panel_detail(panel),
        "wsUrl": websocket_url(request, panel),
        "stateUrl": reverse("panel-page-state", args=[workspace.slug, panel.panel_id]),
        "activityUrl": reverse("api:panel-activity", args=[workspace.slug, panel.panel_id]),
        "controls": _panel_controls(request, workspace, panel),
    }
    admin_url = reverse("admin:workspaces_panel_change", args=[panel.pk]) if request.user.is_staff else None
    return render(request, "workspaces/panel.html",
                  {"workspace": workspace, "panel": panel, "bootstrap": bootstrap, "admin_url": admin_url})


@page_login_required
def panel_state(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """Same-origin state for a page that noticed a gap in state versions."""
    panel = _panel_for(_workspace_for(request, slug), panel_id)
    response = JsonResponse({"panelId": panel.panel_id, "state": panel.state, "stateVersion": panel.state_version})
    response["Cache-Control"] = "no-store"
    return response
