"""Admin console for panel revisions: read-only history on the panel, each with its diff, and restore.

Revisions are written only by the panel service; restoring one calls it too, so the state
migrates and open pages redraw as after any update.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from workspaces.models import Panel, PanelRevision
from workspaces.services import panels as panel_service
from workspaces.services.connections import release_connection
from workspaces.services.panels import ServiceError, revisions

DIFF_COLOURS = {"+": "#0a6b2d", "-": "#a11", "@": "#555"}


def diff_html(revision: PanelRevision) -> str:
    lines = revisions.diff_lines(revision)
    if not lines:
        return "—"
    body = format_html_join("\n", '<span style="color:{}">{}</span>', (
        (DIFF_COLOURS.get(line[:1], "inherit"), line) for line in lines
    ))
    return format_html('<pre style="margin:0; white-space:pre-wrap">{}</pre>', body)


REVISIONS_SHOWN = 20


class PanelRevisionsMixin:
    """For the panel admin: its newest revisions, each linked to its page (diff and restore)."""

    @admin.display(description="Revisions")
    def revision_history(self, panel: Panel) -> str:
        shown = list(revisions.revisions_of(panel)[:REVISIONS_SHOWN])
        if not shown:
            return "—"
        rows = format_html_join("", '<li><a href="{}">r{}</a> · {} · {} · {}</li>', (
            (reverse("admin:workspaces_panelrevision_change", args=[revision.pk]), revision.number,
             f"{revision.created_at:%Y-%m-%d %H:%M:%S}", revision.author or "—", revision.message or "—")
            for revision in shown
        ))
        every = reverse("admin:workspaces_panelrevision_changelist") + f"?panel__id__exact={panel.pk}"
        return format_html('<ul style="margin:0">{}</ul><a href="{}">Every kept revision</a>', rows, every)


@admin.register(PanelRevision)
class PanelRevisionAdmin(admin.ModelAdmin):
    list_display = ["panel", "number", "created_at", "author", "message"]
    list_filter = ["panel__workspace", "panel"]
    search_fields = ["panel__panel_id", "message", "author__username"]
    list_select_related = ["panel__workspace", "author"]
    fields = ("panel_link", "number", "created_at", "author", "message", "content_hash", "restore_button", "diff",
              "source")
    readonly_fields = fields
    actions = ["restore"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revisions go with their panel (who may delete it may delete them); nexus_gc --keep prunes old ones.
        return bool(request.user.has_perm("workspaces.delete_panel"))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Panel")
    def panel_link(self, revision: PanelRevision) -> str:
        url = reverse("admin:workspaces_panel_change", args=[revision.panel_id])
        return format_html('<a href="{}">{}</a>', url, revision.panel)

    @admin.display(description="Restore")
    def restore_button(self, revision: PanelRevision) -> str:
        # Posts the page's own form (and its CSRF token) to the restore view.
        url = reverse("admin:workspaces_panelrevision_restore", args=[revision.pk])
        return format_html('<button type="submit" formaction="{}" class="button">Restore revision {}</button>',
                           url, revision.number)

    def get_urls(self) -> list[URLPattern]:
        restore = path("<int:revision_pk>/restore/", self.admin_site.admin_view(self.restore_view),
                       name="workspaces_panelrevision_restore")
        return [restore, *super().get_urls()]

    def restore_view(self, request: HttpRequest, revision_pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("workspaces.change_panel"):
            raise PermissionDenied
        revision = get_object_or_404(PanelRevision.objects.select_related("panel__workspace"), pk=revision_pk)
        self._restore(request, revision)
        return HttpResponseRedirect(reverse("admin:workspaces_panel_change", args=[revision.panel_id]))

    @admin.display(description="Changes since the previous revision")
    def diff(self, revision: PanelRevision) -> str:
        return diff_html(revision)

    @admin.action(description="Restore the selected revision (a new revision with its source)")
    def restore(self, request: HttpRequest, queryset: QuerySet[PanelRevision]) -> None:
        chosen = list(queryset.select_related("panel__workspace")[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one revision to restore.", messages.ERROR)
            return
        if not request.user.has_perm("workspaces.change_panel"):
            raise PermissionDenied
        self._restore(request, chosen[0])

    def _restore(self, request: HttpRequest, revision: PanelRevision) -> None:
        release_connection()
        try:
            update = async_to_sync(panel_service.restore_revision)(
                revision.panel, revision.number, actor=request.user.get_username())
        except ServiceError as exc:
            self.message_user(request, f"{revision.panel}: {exc.code}: {exc.message}", messages.ERROR)
            return
        if not update.created:
            self.message_user(request, f"{revision.panel} already has this source (revision {update.revision}).")
            return
        migration = ", ".join(f"{kind} {', '.join(keys)}" for kind, keys in update.migration.items() if keys)
        self.message_user(request, f"{revision.panel}: revision {revision.number} restored as revision "
                                   f"{update.revision}" + (f" ({migration})" if migration else ""))
