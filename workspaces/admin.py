"""Admin console: workspaces with their members, panels with service-backed actions, the audit trail.

Every change to a panel goes through ``workspaces.services.panels`` (creation, NXML edits,
deletion and the actions), so the console behaves like the API: mount and unmount run,
Computed keys are recomputed and connected clients see the change.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html

from workspaces.models import AuditRecord, Membership, Panel, Workspace
from workspaces.services import panels as panel_service
from workspaces.services.panels import ServiceError


class SaveRefused(Exception):
    """The service refused a save the form had accepted (a race); the user is told why."""


def run_service(func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any) -> Any:
    return async_to_sync(func)(*args, **kwargs)


def format_nxml_error(error: dict[str, Any]) -> str:
    return f"line {error.get('line')}, column {error.get('column')}: {error.get('code')} {error.get('message')}"


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="nexus-json" style="margin:0; white-space:pre-wrap">{}</pre>', text)


# ---------------------------------------------------------------- workspaces


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "max_panels", "panel_count", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MembershipInline]

    @admin.display(description="Panels")
    def panel_count(self, workspace: Workspace) -> int:
        return workspace.panels.count()


# ---------------------------------------------------------------- panels


class PanelForm(forms.ModelForm):
    """The NXML source is validated with the real parser; each error names its line and column."""

    source = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false",
                                     "style": "font-family: monospace"}),
        strip=False,
    )

    class Meta:
        model = Panel
        fields = ["workspace", "panel_id", "source", "extension_config"]

    def clean_source(self) -> str:
        source: str = self.cleaned_data["source"]
        errors = panel_service.validate_source(source)
        if errors:
            raise forms.ValidationError([format_nxml_error(error) for error in errors])
        return source

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        workspace = cleaned.get("workspace")
        if self.instance.pk is None and workspace is not None:
            if workspace.panels.count() >= workspace.panel_limit:
                raise forms.ValidationError(
                    f"Workspace '{workspace.slug}' already has its maximum of {workspace.panel_limit} panels."
                )
        return cleaned


@admin.register(Panel)
class PanelAdmin(admin.ModelAdmin):
    form = PanelForm
    list_display = ["panel_id", "workspace", "title", "status", "state_version", "last_activity"]
    list_filter = ["workspace", "status"]
    search_fields = ["panel_id", "title", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    ordering = ["workspace__slug", "panel_id"]
    actions = ["validate_panels", "reset_state", "remount", "stop", "export_nxml"]
    readonly_fields = [
        "title", "version", "status", "state_version", "pretty_state", "pretty_last_error",
        "created_at", "updated_at", "last_activity",
    ]

    def get_fields(self, request: HttpRequest, obj: Panel | None = None) -> list[Any]:
        if obj is None:
            return ["workspace", "panel_id", "extension_config", "source"]
        return ["workspace", "panel_id", "title", "version", "status", "state_version", "pretty_state",
                "pretty_last_error", "pretty_extension_config", "created_at", "last_activity", "source"]

    def get_readonly_fields(self, request: HttpRequest, obj: Panel | None = None) -> list[str]:
        if obj is None:
            return []
        # Identity and extension config are fixed once created; the NXML stays editable.
        return [*self.readonly_fields, "workspace", "panel_id", "pretty_extension_config"]

    @admin.display(description="State")
    def pretty_state(self, panel: Panel) -> str:
        return pretty_json(panel.state)

    @admin.display(description="Last error")
    def pretty_last_error(self, panel: Panel) -> str:
        return pretty_json(panel.last_error) if panel.last_error else "—"

    @admin.display(description="Extension config")
    def pretty_extension_config(self, panel: Panel) -> str:
        return pretty_json(panel.extension_config)

    # -- saving and deleting through the service
    #
    # Django's admin wraps saves and deletes in one transaction. The service commits in its own
    # worker threads (own connections), and on SQLite that outer transaction would hold the
    # write lock the workers wait for, so these views run without it: the service's
    # transactions are the ones that matter.

    @csrf_protect_m
    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        try:
            # Django's own body of changeform_view, minus its transaction (not in the type stubs).
            return self._changeform_view(  # type: ignore[attr-defined, no-any-return]
                request, object_id, form_url, extra_context
            )
        except SaveRefused:
            return HttpResponseRedirect(request.get_full_path())

    @csrf_protect_m
    def delete_view(self, request: HttpRequest, object_id: str,
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)  # type: ignore[attr-defined, no-any-return]

    def save_model(self, request: HttpRequest, obj: Panel, form: forms.ModelForm, change: bool) -> None:
        actor = request.user.get_username()
        try:
            if change:
                if "source" in form.changed_data:
                    run_service(panel_service.update_source, obj, obj.source)
                    obj.refresh_from_db()
                return
            panel, outcome = run_service(
                panel_service.create_panel, obj.workspace, obj.source, panel_id=obj.panel_id,
                extension_config=obj.extension_config or {}, actor=actor,
            )
        except ServiceError as exc:
            # The form checked everything it could; this is a race (same id, limit reached).
            self.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
            raise SaveRefused from exc
        obj.pk = panel.pk
        obj.refresh_from_db()
        if outcome is not None and outcome.status == "error":
            error = outcome.error or {}
            self.message_user(request, f"Mount failed: {error.get('code')} {error.get('message')}",
                              messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: Panel) -> None:
        run_service(panel_service.delete_panel, obj, request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        for panel in queryset.select_related("workspace"):
            self.delete_model(request, panel)

    # -- actions

    def _each(self, request: HttpRequest, queryset: QuerySet[Panel], verb: str,
              operation: Callable[[Panel], str | None]) -> None:
        done = 0
        for panel in queryset.select_related("workspace"):
            try:
                problem = operation(panel)
            except ServiceError as exc:
                problem = f"{exc.code}: {exc.message}"
            if problem:
                self.message_user(request, f"{panel}: {problem}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} panel(s).", messages.SUCCESS)

    @admin.action(description="Validate NXML of selected panels")
    def validate_panels(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        def validate(panel: Panel) -> str | None:
            errors = panel_service.validate_source(panel.source)
            return "; ".join(format_nxml_error(error) for error in errors) or None

        self._each(request, queryset, "Validated", validate)

    @admin.action(description="Reset state to defaults")
    def reset_state(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        def reset(panel: Panel) -> None:
            run_service(panel_service.reset_state, panel)

        self._each(request, queryset, "Reset", reset)

    @admin.action(description="Re-run mount")
    def remount(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        actor = request.user.get_username()

        def mount(panel: Panel) -> str | None:
            outcome = run_service(panel_service.mount, panel, actor)
            if outcome is not None and outcome.status == "error":
                error = outcome.error or {}
                return f"mount failed: {error.get('code')} {error.get('message')}"
            return None

        self._each(request, queryset, "Mounted", mount)

    @admin.action(description="Stop (run unmount)")
    def stop(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        actor = request.user.get_username()

        def stop(panel: Panel) -> None:
            run_service(panel_service.stop_panel, panel, actor)

        self._each(request, queryset, "Stopped", stop)

    @admin.action(description="Export NXML (one file, or a zip for several)")
    def export_nxml(self, request: HttpRequest, queryset: QuerySet[Panel]) -> HttpResponse:
        panels = list(queryset.select_related("workspace").order_by("workspace__slug", "panel_id"))
        if len(panels) == 1:
            panel = panels[0]
            response = HttpResponse(panel.source, content_type="application/xml; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{panel.panel_id}.nxml"'
            return response
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for panel in panels:
                archive.writestr(f"{panel.workspace.slug}/{panel.panel_id}.nxml", panel.source)
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="panels.zip"'
        return response


# ---------------------------------------------------------------- audit trail


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "outcome", "action", "resource", "workspace", "panel", "handler", "user"]
    list_filter = ["outcome", "action", "workspace"]
    search_fields = ["workspace", "panel", "handler", "user", "resource", "reason"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False
