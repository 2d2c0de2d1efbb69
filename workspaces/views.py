"""Browser pages: the workspaces a user belongs to, their panels, and a live panel."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workspaces import access, editing
from workspaces.access import AccessDenied, Principal
from workspaces.api.throttling import FailedLogins, client_address, login_name
from workspaces.forms import WorkspaceCreateForm
from workspaces.models import Membership, Panel, PanelStatus, Workspace
from workspaces.presenters import iso, panel_detail, websocket_url
from workspaces.services import panels as panel_service
from workspaces.services import workspaces as workspace_service
from workspaces.services.connections import release_connection
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ServiceError, revisions

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
    return render(request, "workspaces/panel_list.html", {
        "workspace": workspace, "panels": panels, "can_create": _allowed(request, workspace, access.PANEL_CREATE),
    })


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
    return render(request, "workspaces/panel.html", {
        "workspace": workspace, "panel": panel, "bootstrap": bootstrap, "admin_url": admin_url,
        "can_edit": _allowed(request, workspace, EDIT_PERMISSION),
        "can_delete": _allowed(request, workspace, access.PANEL_DELETE),
        "schedules": list(panel.schedules.all()),
    })


@page_login_required
def panel_state(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """Same-origin state for a page that noticed a gap in state versions."""
    panel = _panel_for(_workspace_for(request, slug), panel_id)
    response = JsonResponse({"panelId": panel.panel_id, "state": panel.state, "stateVersion": panel.state_version})
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- authoring pages

# Changing a panel's source is creating its new definition: the role that may create panels may edit them.
EDIT_PERMISSION = access.PANEL_CREATE


def _allowed(request: HttpRequest, workspace: Workspace, permission: str) -> bool:
    try:
        access.check(Principal(user=request.user), workspace, permission)
    except AccessDenied:
        return False
    return True


def _require(request: HttpRequest, workspace: Workspace, permission: str) -> None:
    if not _allowed(request, workspace, permission):
        raise PermissionDenied(f"Your role in this workspace does not allow {permission}")


def _run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """An async panel-service call from a page view."""
    release_connection()
    return async_to_sync(func)(*args, **kwargs)


def _editor_config(request: HttpRequest, workspace: Workspace, **fields: Any) -> dict[str, Any]:
    """What editor.js needs: where to validate, preview and save, and the session's CSRF token."""
    return {
        "workspace": workspace.slug,
        "validateUrl": reverse("api:panel-validate", args=[workspace.slug]),
        "previewUrl": reverse("panel-preview", args=[workspace.slug]),
        "panelsUrl": reverse("api:panels", args=[workspace.slug]),
        "pageUrlTemplate": reverse("panel-page", args=[workspace.slug, "__id__"]),
        "csrfToken": get_token(request),
        **fields,
    }


def _editor_page(request: HttpRequest, workspace: Workspace, panel: Panel | None,
                 config: dict[str, Any]) -> HttpResponse:
    return render(request, "workspaces/panel_editor.html", {
        "workspace": workspace, "panel": panel, "config": config, "schema": editing.completion_schema(),
        "samples": [sample.name for sample in editing.samples()],
    })


@page_login_required
def panel_new(request: HttpRequest, slug: str) -> HttpResponse:
    """A new panel: the NXML starts blank or from a sample (?sample=name), and is created through the API."""
    workspace = _workspace_for(request, slug)
    _require(request, workspace, access.PANEL_CREATE)
    sample = request.GET.get("sample") or "blank"
    config = _editor_config(request, workspace, mode="new", source=editing.sample_source(sample), sample=sample)
    return _editor_page(request, workspace, None, config)


@page_login_required
def panel_edit(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """The panel's NXML in the editor; saving replaces it in place (PATCH), based on the revision shown."""
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    _require(request, workspace, EDIT_PERMISSION)
    config = _editor_config(
        request, workspace, mode="edit", source=panel.source, panelId=panel.panel_id,
        revision=revisions.current_number(panel) or None, state=panel.state,
        saveUrl=reverse("api:panel", args=[workspace.slug, panel.panel_id]),
        panelUrl=reverse("panel-page", args=[workspace.slug, panel.panel_id]),
    )
    return _editor_page(request, workspace, panel, config)


@page_login_required
@require_POST
def panel_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The view a source would show (JSON), from its defaults or from a panel's current values."""
    workspace = _workspace_for(request, slug)
    _require(request, workspace, access.PANEL_CREATE)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"valid": False, "errors": [], "message": "The request body is not JSON."}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"valid": False, "errors": [], "message": "The request body must be an object."},
                            status=400)
    current: dict[str, Any] | None = None
    if body.get("panelId"):
        current = _panel_for(workspace, str(body["panelId"])).state
    return JsonResponse(editing.preview(body.get("source"), workspace.slug, current))


@dataclass(frozen=True)
class RevisionRow:
    number: int
    author: str
    created_at: str | None
    message: str
    diff: list[editing.DiffLine]
    current: bool


def _revision_rows(panel: Panel) -> list[RevisionRow]:
    stored = list(revisions.revisions_of(panel))
    rows = []
    for index, revision in enumerate(stored):
        previous = stored[index + 1].source if index + 1 < len(stored) else ""
        rows.append(RevisionRow(
            number=revision.number,
            author=revision.author.get_username() if revision.author else "",
            created_at=iso(revision.created_at),
            message=revision.message,
            diff=editing.diff_lines(previous, revision.source),
            current=index == 0,
        ))
    return rows


@page_login_required
@require_GET
def panel_history(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """The panel's revisions, newest first, each with its changes against the one before."""
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    return render(request, "workspaces/panel_history.html", {
        "workspace": workspace, "panel": panel, "revisions": _revision_rows(panel),
        "can_restore": _allowed(request, workspace, EDIT_PERMISSION),
    })


@page_login_required
@require_POST
def panel_restore(request: HttpRequest, slug: str, panel_id: str, number: int) -> HttpResponse:
    """A new revision with an old one's source (the state migrates as for any edit); then the panel."""
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    _require(request, workspace, EDIT_PERMISSION)
    try:
        _run(panel_service.restore_revision, panel, number, actor=request.user.get_username())
    except ServiceError as exc:
        return render(request, "workspaces/panel_action_failed.html",
                      {"workspace": workspace, "panel": panel, "action": f"restore revision {number} of",
                       "message": exc.message}, status=404 if exc.code == ErrorCode.NOT_FOUND else 400)
    return redirect("panel-page", workspace.slug, panel.panel_id)


@page_login_required
@require_POST
def panel_duplicate(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """A new panel with this one's source and extension settings (fresh state); its id gets a suffix."""
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    _require(request, workspace, access.PANEL_CREATE)
    try:
        copy, _outcome = _run(panel_service.create_panel, workspace, panel.source,
                              extension_config=panel.extension_config, actor=request.user.get_username())
    except ServiceError as exc:
        return render(request, "workspaces/panel_action_failed.html",
                      {"workspace": workspace, "panel": panel, "action": "duplicate", "message": exc.message},
                      status=409 if exc.code in {ErrorCode.PANEL_EXISTS, ErrorCode.MAX_PANELS} else 400)
    return redirect("panel-page", workspace.slug, copy.panel_id)


@page_login_required
@require_http_methods(["GET", "POST"])
def panel_delete(request: HttpRequest, slug: str, panel_id: str) -> HttpResponse:
    """GET asks for confirmation; POST runs unmount, deletes the panel and goes back to the list."""
    workspace = _workspace_for(request, slug)
    panel = _panel_for(workspace, panel_id)
    _require(request, workspace, access.PANEL_DELETE)
    if request.method == "POST":
        _run(panel_service.delete_panel, panel, request.user.get_username())
        return redirect("panel-list", workspace.slug)
    return render(request, "workspaces/panel_delete.html", {"workspace": workspace, "panel": panel})
