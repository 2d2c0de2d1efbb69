"""Housekeeping: remove long-stopped or failed panels, old audit records and, on request, old revisions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from workspaces.models import AuditRecord, Panel, PanelStatus
from workspaces.services import panels as panel_service
from workspaces.services.panels import ServiceError, revisions

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BATCH = 500
ACTOR = "nexus_gc"


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip().lower())
    if not match:
        raise CommandError(f"--older-than {text!r}: use a number and a unit, e.g. 30m, 12h, 7d, 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


class Command(BaseCommand):
    help = (
        "Delete panels that are stopped or in error and untouched for longer than --older-than (default 7d), "
        "and audit records older than --audit-days (default AUDIT_RETENTION_DAYS). --dry-run lists what would "
        "go and changes nothing. Panels are deleted through the panel service (unmount runs, open sockets close "
        "with 4404), in batches with a progress bar; prints a summary. --keep N also deletes all but each "
        "panel's newest N revisions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", default="7d", help="age of stopped/error panels to purge (e.g. 12h, 7d)")
        parser.add_argument("--audit-days", type=int, default=None, help="keep audit records this many days")
        parser.add_argument("--keep", type=int, default=None, metavar="N",
                            help="also prune revisions: keep each panel's newest N (N >= 1)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        panel_cutoff = now - parse_age(options["older_than"])
        audit_days = options["audit_days"] or settings.NEXUS.AUDIT_RETENTION_DAYS
        if audit_days < 1:
            raise CommandError("--audit-days must be at least 1")
        panels = Panel.objects.filter(
            status__in=[PanelStatus.STOPPED, PanelStatus.ERROR], last_activity__lt=panel_cutoff
        ).select_related("workspace")
        audits = AuditRecord.objects.filter(created_at__lt=now - timedelta(days=audit_days))
        keep = options["keep"]
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1: a panel always keeps its current revision")
        if options["dry_run"]:
            self._list(panels, audits)
            if keep is not None:
                self.stdout.write(f"would delete {revisions.prune(keep, dry_run=True)} old revision(s) (dry run)")
            return
        removed_panels = self._purge("panels", panels, options["no_progress"], self._delete_panels)
        removed_audits = self._purge("audit records", audits, options["no_progress"], self._delete_rows)
        self.stdout.write(
            self.style.SUCCESS(f"removed {removed_panels} panel(s) and {removed_audits} audit record(s)")
        )
        if keep is not None:
            self.stdout.write(self.style.SUCCESS(f"removed {self._prune(keep)} old revision(s), kept {keep} per panel"))

    def _prune(self, keep: int) -> int:
        try:
            return revisions.prune(keep)
        except ServiceError as exc:
            raise CommandError(exc.message) from None

    def _list(self, panels: QuerySet[Panel], audits: QuerySet[AuditRecord]) -> None:
        for panel in panels.order_by("last_activity"):
            when = f"{panel.last_activity:%Y-%m-%d}"
            self.stdout.write(f"would delete panel {panel} ({panel.status}, last activity {when})")
        self.stdout.write(f"would delete {panels.count()} panel(s) and {audits.count()} audit record(s) (dry run)")

    def _purge(self, label: str, queryset: QuerySet[Any], quiet: bool,
               delete: Callable[[QuerySet[Any]], int]) -> int:
        """Delete in batches of BATCH; rows that could not be deleted are left out of later batches."""
        from tqdm import tqdm

        total = queryset.count()
        removed = 0
        kept: set[int] = set()
        with tqdm(total=total, desc=f"purging {label}", unit="row", disable=quiet or total == 0,
                  file=self.stderr._out) as bar:
            while True:
                ids = list(queryset.exclude(pk__in=kept).values_list("pk", flat=True)[:BATCH])
                if not ids:
                    break
                done = delete(queryset.model.objects.filter(pk__in=ids))
                kept.update(queryset.filter(pk__in=ids).values_list("pk", flat=True))
                removed += done
                bar.update(len(ids))
        return removed

    def _delete_rows(self, batch: QuerySet[Any]) -> int:
        count, _ = batch.delete()
        return count

    def _delete_panels(self, batch: QuerySet[Panel]) -> int:
        """Through the panel service: unmount runs (unless stopped) and open sockets close with 4404."""
        panels = list(batch.select_related("workspace"))
        for panel in panels:
            try:
                async_to_sync(panel_service.delete_panel)(panel, ACTOR)
            except Exception as exc:  # one bad panel must not stop the housekeeping
                self.stderr.write(f"could not delete panel {panel}: {exc}")
        return len(panels) - batch.count()
