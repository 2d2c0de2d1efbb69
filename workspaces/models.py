"""Workspaces, their members and panels, and the audit trail of denied or external actions."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

PANEL_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
panel_id_validator = RegexValidator(PANEL_ID_PATTERN, "Panel ids are 1-64 letters, digits, '_' or '-'.")


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    OWNER = "owner", "Owner"


class Workspace(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    max_panels = models.PositiveIntegerField(
        null=True, blank=True, help_text="Panels allowed in this workspace; empty uses MAX_PANELS."
    )
    settings = models.JSONField(default=dict, blank=True)
    members = models.ManyToManyField(django_settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def panel_limit(self) -> int:
        return self.max_panels or django_settings.NEXUS.MAX_PANELS


class Membership(models.Model):
    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="unique_membership")]
        ordering = ["workspace", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class PanelStatus(models.TextChoices):
    INITIALIZING = "initializing", "Initializing"
    RUNNING = "running", "Running"
    ERROR = "error", "Error"
    STOPPED = "stopped", "Stopped"


class Panel(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="panels")
    panel_id = models.CharField(max_length=64, validators=[panel_id_validator])
    source = models.TextField(help_text="The panel's NXML document.")
    definition = models.JSONField(default=dict, help_text="The parsed NXML tree.")
    definition_hash = models.CharField(max_length=64, blank=True, editable=False,
                                       help_text="Digest of the parsed tree; keys the in-process cache.")
    title = models.CharField(max_length=200, blank=True)
    version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=PanelStatus.choices, default=PanelStatus.INITIALIZING)
    state = models.JSONField(default=dict, blank=True)
    state_version = models.PositiveBigIntegerField(default=0)
    extension_config = models.JSONField(default=dict, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "panel_id"], name="unique_panel_id")]
        indexes = [models.Index(fields=["status", "updated_at"])]
        ordering = ["workspace", "panel_id"]

    def __str__(self) -> str:
        return f"{self.workspace.slug}/{self.panel_id}"


class AuditOutcome(models.TextChoices):
    DENIED = "denied", "Denied"
    ALLOWED = "allowed", "Allowed"
    FAILED = "failed", "Failed"


class AuditRecord(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    workspace = models.CharField(max_length=64, blank=True)
    panel = models.CharField(max_length=64, blank=True)
    handler = models.CharField(max_length=128, blank=True)
    user = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    resource = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.resource} {self.outcome}"

    @classmethod
    def record(cls, **fields: Any) -> AuditRecord:
        return cls.objects.create(**{key: value or "" for key, value in fields.items()})


class RunKind(models.TextChoices):
    TOOL = "tool", "Tool"
    LIFECYCLE = "lifecycle", "Lifecycle"


class PanelRun(models.Model):
    """One finished handler run of a panel, with its $log lines; the newest few per panel are kept."""

    panel = models.ForeignKey(Panel, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    handler = models.CharField(max_length=128, help_text="The tool's name, or the lifecycle event.")
    actor = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16)
    duration_ms = models.FloatField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    logs = models.JSONField(default=list, blank=True, help_text="The $log lines: [{level, message}].")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["panel", "-id"], name="panel_run_newest")]

    def __str__(self) -> str:
        return f"{self.kind} {self.handler}: {self.status}"


class MissedPolicy(models.TextChoices):
    ONCE = "once", "Run one catch-up"
    SKIP = "skip", "Skip"


class Schedule(models.Model):
    """A panel's <Schedule>: when its tool runs next, and how its last run went.

    Rows follow the panel's source (workspaces.services.schedules.sync); the scheduler loop
    claims due rows with SELECT … FOR UPDATE SKIP LOCKED, so each tick runs on one process.
    """

    panel = models.ForeignKey(Panel, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=128)
    tool = models.CharField(max_length=128)
    every = models.CharField(max_length=32, blank=True, help_text="Interval as written (5m); empty for cron.")
    every_seconds = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=128, blank=True, help_text="Five-field cron expression.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA zone the cron expression is read in.")
    args = models.JSONField(default=dict, blank=True)
    missed = models.CharField(max_length=8, choices=MissedPolicy.choices, default=MissedPolicy.ONCE)
    declaration = models.CharField(max_length=64, editable=False,
                                   help_text="Digest of the <Schedule> as written; a change resets the schedule.")
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField()
    running_until = models.DateTimeField(null=True, blank=True,
                                         help_text="Lease of a run in progress; ticks before it are skipped.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["panel", "name"], name="unique_schedule_name")]
        indexes = [models.Index(fields=["paused", "next_run_at"], name="schedule_due")]
        ordering = ["panel", "name"]

    def __str__(self) -> str:
        return f"{self.panel_id}:{self.name}"

    @property
    def expression(self) -> str:
        return f"every {self.every}" if self.every_seconds is not None else self.cron


class PanelRevision(models.Model):
    """One stored source of a panel; number 1 is the source it was created with."""

    panel = models.ForeignKey(Panel, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                               null=True, blank=True, related_name="panel_revisions")
    created_at = models.DateTimeField(default=timezone.now)
    message = models.CharField(max_length=500, blank=True)
    source = models.TextField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the source text.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["panel", "number"], name="unique_panel_revision")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.panel} r{self.number}"


class WorkspaceQuota(models.Model):
    """A workspace's own quotas; an empty field uses the process default (WORKSPACE_* settings)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="quota")
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="Executions at once, per process; empty uses WORKSPACE_MAX_CONCURRENT."
    )
    executions_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tool runs per minute; empty uses WORKSPACE_EXECUTIONS_PER_MINUTE."
    )
    sandbox_ms_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sandbox milliseconds per minute; empty uses WORKSPACE_SANDBOX_MS_PER_MINUTE."
    )
    http_calls_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="nexus.http calls per minute; empty uses WORKSPACE_HTTP_CALLS_PER_MINUTE."
    )

    def __str__(self) -> str:
        return f"quotas of {self.workspace}"


class PanelSuspension(models.Model):
    """A handler waiting on an extension call: its exported guest state and who carries the call out.

    The owner (a process identity) renews ``lease_until`` while it waits; when the lease runs
    out another process claims the row and finishes the handler.
    """

    panel = models.ForeignKey(Panel, on_delete=models.CASCADE, related_name="suspensions")
    handler = models.CharField(max_length=128, help_text="The tool's name, or the lifecycle event.")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.TOOL)
    actor = models.CharField(max_length=150, blank=True)
    args = models.JSONField(default=dict, blank=True)
    scope = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    extension = models.CharField(max_length=128, help_text="The alias the handler awaits, e.g. http.")
    method = models.CharField(max_length=64)
    call_args = models.JSONField(default=list, blank=True)
    blob = models.BinaryField(help_text="The exported, signed guest state.")
    owner = models.CharField(max_length=160, db_index=True)
    generation = models.PositiveIntegerField(default=0, help_text="Bumped on every takeover.")
    lease_until = models.DateTimeField(db_index=True)
    deadline = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.panel} {self.handler} waiting on {self.extension}.{self.method}"
