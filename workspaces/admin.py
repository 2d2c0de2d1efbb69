"""Admin console: workspaces with their members, panels with service-backed actions, the audit trail.

Every change to a panel goes through ``workspaces.services.panels`` (creation, NXML edits,
deletion and the actions), and every change to a workspace or its members through
``workspaces.services.workspaces``, so the console behaves like the API: mount and unmount run,
Computed keys are recomputed, a workspace keeps an owner and connected clients see the change.
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
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from workspaces.admin_revisions import PanelRevisionsMixin
from workspaces.models import (
    AuditRecord,
    Membership,
    Panel,
    PanelRun,
    PanelSuspension,
    Role,
    Schedule,
    Workspace,
    WorkspaceQuota,
)
from workspaces.services import activity as activity_service
from workspaces.services import panels as panel_service
from workspaces.services import quotas as quota_service
from workspaces.services import schedules as schedule_service
from workspaces.services import suspensions as suspension_service
from workspaces.services import workspaces as workspace_service
from workspaces.services.connections import release_connection
from workspaces.services.panels import ServiceError


class SaveRefused(Exception):
    """The service refused a save the form had accepted (a race); the user is told why."""


def run_service(func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any) -> Any:
    release_connection()
    return async_to_sync(func)(*args, **kwargs)


def format_nxml_error(error: dict[str, Any]) -> str:
    return f"line {error.get('line')}, column {error.get('column')}: {error.get('code')} {error.get('message')}"


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="nexus-json" style="margin:0; white-space:pre-wrap">{}</pre>', text)


# ---------------------------------------------------------------- workspaces


class MembershipFormSet(BaseInlineFormSet):
    """Refuses, before anything is saved, a change that would leave the workspace without an owner."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or self.instance.pk is None:
            return
        had_owner = Membership.objects.filter(workspace=self.instance, role=Role.OWNER).exists()
        keeps_owner = any(
            form.cleaned_data.get("role") == Role.OWNER
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        )
        if had_owner and not keeps_owner:
            raise forms.ValidationError(workspace_service.LAST_OWNER)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 1
    autocomplete_fields = ["user"]


class WorkspaceQuotaInline(admin.StackedInline):
    """The workspace's own quotas (empty fields use the WORKSPACE_* defaults) and what it uses now."""

    model = WorkspaceQuota
    max_num = 1
    can_delete = True
    fields = ["max_concurrent", "executions_per_minute", "sandbox_ms_per_minute", "http_calls_per_minute"]
    verbose_name = verbose_name_plural = "quotas"


def quota_usage_html(workspace: Workspace) -> str:
    """Each quota's current use against its limit, one per line ("?" while the counters are unreachable)."""
    usage = quota_service.usage_of(workspace.slug)
    return format_html_join(
        mark_safe("<br>"), "{}: {} / {}",
        ((quota, "?" if figures["used"] is None else figures["used"], figures["limit"])
         for quota, figures in usage.items()),
    )


def save_memberships(workspace: Workspace, formset: BaseInlineFormSet) -> None:
    """Apply the inline's rows through the service: additions, then role changes, then removals.

    That order (and promotions before demotions) lets one save hand the owner role over.
    """
    formset.save(commit=False)
    for member in formset.new_objects:
        member.pk = workspace_service.add_member(workspace, member.user, member.role).pk
    changes = sorted(formset.changed_objects, key=lambda change: change[0].role != Role.OWNER)
    for member, changed_fields in changes:
        if "user" in changed_fields:  # the row now names someone else: add them, remove the other
            previous = Membership.objects.select_related("user").get(pk=member.pk)
            member.pk = workspace_service.add_member(workspace, member.user, member.role).pk
            workspace_service.remove_member(workspace, previous.user)
        else:
            workspace_service.change_role(workspace, member.user, member.role)
    for member in formset.deleted_objects:
        workspace_service.remove_member(workspace, member.user)


class ServiceDeletes(admin.ModelAdmin):
    """Deletes run without Django's outer transaction: the service commits in its own workers.

    Those workers use their own connections; on SQLite an outer transaction would hold the
    write lock they wait for, so the service's transactions are the ones that matter.
    """

    @csrf_protect_m
    def delete_view(self, request: HttpRequest, object_id: str,
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)  # type: ignore[attr-defined, no-any-return]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


def refused(admin_site: admin.ModelAdmin, request: HttpRequest, exc: ServiceError) -> SaveRefused:
    """Tell the user why the service refused a save the form had accepted (a race, a rule)."""
    admin_site.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
    return SaveRefused(exc.message)


@admin.register(Workspace)
class WorkspaceAdmin(ServiceDeletes):
    """Limits (max_panels) are edited here, by staff; the REST API shows them read-only."""

    list_display = ["slug", "name", "max_panels", "panel_count", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at", "quota_usage"]
    inlines = [MembershipInline, WorkspaceQuotaInline]

    @admin.display(description="Quotas: current use / limit")
    def quota_usage(self, workspace: Workspace | None) -> str:
        return "-" if workspace is None or workspace.pk is None else quota_usage_html(workspace)

    @admin.display(description="Panels")
    def panel_count(self, workspace: Workspace) -> int:
        return workspace.panels.count()

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        try:  # Django's atomic view: a refused membership change rolls the whole save back
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SaveRefused:
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: Workspace, form: forms.ModelForm, change: bool) -> None:
        try:
            if change:
                fields = {name: getattr(obj, name) for name in form.changed_data}
                saved = workspace_service.update_workspace(obj, **fields) if fields else obj
            else:
                saved = workspace_service.create_workspace(obj.slug, obj.name, max_panels=obj.max_panels)
                if obj.settings:
                    saved = workspace_service.update_workspace(saved, settings=obj.settings)
        except ServiceError as exc:
            raise refused(self, request, exc) from exc
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is WorkspaceQuota:
            formset.save(commit=False)
            for row in formset.deleted_objects:
                quota_service.delete_override(row)
            for row in formset.new_objects + [row for row, _ in formset.changed_objects]:
                quota_service.save_override(row)
            return
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        try:
            save_memberships(form.instance, formset)
        except ServiceError as exc:
            raise refused(self, request, exc) from exc

    def delete_model(self, request: HttpRequest, obj: Workspace) -> None:
        run_service(workspace_service.delete_workspace, obj, request.user.get_username())


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


WAITING_FIELDS = ("handler", "kind", "actor", "extension", "method", "owner", "lease_until", "deadline", "created_at")


@admin.register(Panel)
class PanelAdmin(PanelRevisionsMixin, ServiceDeletes):
    form = PanelForm
    list_display = ["panel_id", "workspace", "title", "status", "state_version", "last_activity", "live_page"]
    list_filter = ["workspace", "status"]
    search_fields = ["panel_id", "title", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    ordering = ["workspace__slug", "panel_id"]
    actions = ["validate_panels", "reset_state", "remount", "stop", "export_nxml"]
    readonly_fields = [
        "title", "version", "status", "state_version", "pretty_state", "pretty_last_error",
        "created_at", "updated_at", "last_activity", "live_page", "recent_runs", "revision_history",
        "waiting_handlers",
    ]

    def get_fields(self, request: HttpRequest, obj: Panel | None = None) -> list[Any]:
        if obj is None:
            return ["workspace", "panel_id", "extension_config", "source"]
        return ["workspace", "panel_id", "live_page", "title", "version", "status", "state_version", "pretty_state",
                "pretty_last_error", "recent_runs", "waiting_handlers", "pretty_extension_config", "created_at",
                "last_activity",
                "revision_history", "source"]

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

    @admin.display(description="Live page")
    def live_page(self, panel: Panel) -> str:
        return format_html('<a href="{}">Open</a>', reverse("panel-page", args=[panel.workspace.slug, panel.panel_id]))

    @admin.display(description="Recent runs")
    def recent_runs(self, panel: Panel) -> str:
        runs = activity_service.runs_of(panel)[:RECENT_RUNS_SHOWN]
        if not runs:
            return "—"
        rows = format_html_join("", "<li>{} · {} {} · {} · {} ms{}</li>", (
            (f"{run.started_at:%Y-%m-%d %H:%M:%S}", run.kind, run.handler, run.status, run.duration_ms,
             f" · {run.error_code}" if run.error_code else "")
            for run in runs
        ))
        every = reverse("admin:workspaces_panelrun_changelist") + f"?panel__id__exact={panel.pk}"
        return format_html('<ul style="margin:0">{}</ul><a href="{}">Every kept run, with its log</a>', rows, every)

    @admin.display(description="Waiting handlers")
    def waiting_handlers(self, panel: Panel) -> str:
        rows = PanelSuspension.objects.filter(panel=panel).order_by("id")[:RECENT_RUNS_SHOWN]
        if not rows:
            return "—"
        items = format_html_join("", "<li>{} {} · waits on {}.{} since {} · {}</li>", (
            (row.kind, row.handler, row.extension, row.method, f"{row.created_at:%Y-%m-%d %H:%M:%S}", row.owner)
            for row in rows
        ))
        every = reverse("admin:workspaces_panelsuspension_changelist") + f"?panel__id__exact={panel.pk}"
        return format_html('<ul style="margin:0">{}</ul><a href="{}">Every waiting handler, to cancel</a>',
                           items, every)

    # -- saving and deleting through the service, without Django's outer transaction (see ServiceDeletes)

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

    def save_model(self, request: HttpRequest, obj: Panel, form: forms.ModelForm, change: bool) -> None:
        actor = request.user.get_username()
        try:
            if change:
                if "source" in form.changed_data:
                    run_service(panel_service.update_source, obj, obj.source, actor=actor,
                                message="Edited in the admin")
                    obj.refresh_from_db()
                return
            panel, outcome = run_service(
                panel_service.create_panel, obj.workspace, obj.source, panel_id=obj.panel_id,
                extension_config=obj.extension_config or {}, actor=actor,
            )
        except ServiceError as exc:
            # The form checked everything it could; this is a race (same id, limit reached).
            raise refused(self, request, exc) from exc
        obj.pk = panel.pk
        obj.refresh_from_db()
        if outcome is not None and outcome.status == "error":
            error = outcome.error or {}
            self.message_user(request, f"Mount failed: {error.get('code')} {error.get('message')}",
                              messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: Panel) -> None:
        run_service(panel_service.delete_panel, obj, request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Panel]) -> None:
        super().delete_queryset(request, queryset.select_related("workspace"))

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only the service writes: staff may look, nobody adds, edits or deletes here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False



@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "outcome", "action", "resource", "workspace", "panel", "handler", "user"]
    list_filter = ["outcome", "action", "workspace"]
    search_fields = ["workspace", "panel", "handler", "user", "resource", "reason"]
    date_hierarchy = "created_at"


# ---------------------------------------------------------------- activity


RECENT_RUNS_SHOWN = 10
RUN_FIELDS = ("panel", "kind", "handler", "actor", "started_at", "status", "duration_ms", "error_code",
              "error_message", "log_lines")


@admin.register(PanelRun)
class PanelRunAdmin(ReadOnlyAdmin):
    """The activity log, read-only: runs are written by the panel service and pruned by it."""

    list_display = ["started_at", "panel", "kind", "handler", "status", "duration_ms", "error_code", "actor"]
    list_filter = ["status", "kind", "panel__workspace"]
    search_fields = ["panel__panel_id", "handler", "actor", "error_code"]
    list_select_related = ["panel__workspace"]
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS

    @admin.display(description="Log")
    def log_lines(self, run: PanelRun) -> str:
        if not run.logs:
            return "—"
        lines = format_html_join("\n", "[{}] {}", ((line.get("level"), line.get("message")) for line in run.logs))
        return format_html('<pre style="margin:0; white-space:pre-wrap">{}</pre>', lines)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PanelRun]:
        activity_service.flush()  # runs are stored in the background; show every finished one
        return super().get_queryset(request)


# ---------------------------------------------------------------- schedules


@admin.register(PanelSuspension)
class PanelSuspensionAdmin(admin.ModelAdmin):
    """Waiting handlers, read only; "cancel" makes them resume with an INTERRUPTED error (docs/suspensions.md)."""

    list_display = ["panel", *WAITING_FIELDS]
    list_filter = ["panel__workspace", "extension"]
    search_fields = ["panel__panel_id", "handler"]
    list_select_related = ["panel__workspace"]
    fields = ("panel", *WAITING_FIELDS, "args", "call_args")
    readonly_fields = fields
    actions = ["cancel"]

    @admin.action(description="Cancel: resume the selected handlers with an error")
    def cancel(self, request: HttpRequest, queryset: QuerySet[PanelSuspension]) -> None:
        count = suspension_service.request_cancel(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Cancelled {count} waiting handler(s); a server resumes them with an error.",
                          messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PanelSuspension | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PanelSuspension | None = None) -> bool:
        return False


SCHEDULE_FIELDS = ("panel", "name", "tool", "expression", "timezone", "args", "missed", "paused", "next_run_at",
                   "running_until", "last_run_at", "last_status", "last_error", "runs", "failures", "skipped")


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules follow their panel's NXML; here they are only paused and resumed (through the service)."""

    list_display = ["panel", "name", "tool", "expression", "paused", "next_run_at", "last_run_at", "last_status",
                    "runs", "failures", "skipped"]
    list_filter = ["paused", "last_status", "panel__workspace"]
    search_fields = ["panel__panel_id", "name", "tool"]
    list_select_related = ["panel__workspace"]
    fields = SCHEDULE_FIELDS
    readonly_fields = SCHEDULE_FIELDS
    actions = ["pause", "resume"]

    @admin.action(description="Pause selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedule_service.pause(schedule)
        self.message_user(request, f"Paused {len(queryset)} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume selected schedules")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedule_service.resume(schedule)
        self.message_user(request, f"Resumed {len(queryset)} schedule(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return False
