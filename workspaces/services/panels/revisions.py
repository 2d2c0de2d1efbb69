"""A panel's stored sources, numbered from 1: recorded, looked up, pruned."""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, QuerySet

from workspaces.models import Panel, PanelRevision
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.errors import ServiceError


def content_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _author(actor: str) -> Any:
    """The user an actor name stands for; None for a command or a name that is no account."""
    if not actor:
        return None
    return get_user_model().objects.filter(username=actor).first()


def record(panel: Panel, source: str, actor: str = "", message: str = "", number: int | None = None) -> PanelRevision:
    """Store ``source`` as the panel's next revision (the caller holds the panel's row)."""
    if number is None:
        number = current_number(panel) + 1
    return PanelRevision.objects.create(
        panel=panel, number=number, author=_author(actor), message=message[:500], source=source,
        content_hash=content_hash(source),
    )


def current_number(panel: Panel) -> int:
    """The newest revision's number; 0 for a panel that has none."""
    return int(PanelRevision.objects.filter(panel=panel).aggregate(newest=Max("number"))["newest"] or 0)


def current(panel: Panel) -> PanelRevision:
    """The newest revision; a panel stored without one gets its source recorded as revision 1."""
    newest = PanelRevision.objects.filter(panel=panel).order_by("-number").first()
    return newest if newest is not None else record(panel, panel.source, number=1)


def revisions_of(panel: Panel) -> QuerySet[PanelRevision]:
    """Newest first, with their authors."""
    return PanelRevision.objects.filter(panel=panel).select_related("author").order_by("-number")


def get_revision(panel: Panel, number: int) -> PanelRevision:
    revision = revisions_of(panel).filter(number=number).first()
    if revision is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"Panel '{panel.panel_id}' has no revision {number}")
    return revision


def previous_of(revision: PanelRevision) -> PanelRevision | None:
    """The revision stored before this one (numbers may have gaps after pruning)."""
    earlier = PanelRevision.objects.filter(panel_id=revision.panel_id, number__lt=revision.number)
    return earlier.order_by("-number").first()


def prune(keep: int, dry_run: bool = False) -> int:
    """Delete all but each panel's newest ``keep`` revisions (keep >= 1); returns how many go."""
    if keep < 1:
        raise ServiceError(ErrorCode.INVALID_REQUEST, "At least one revision per panel is kept (keep >= 1)")
    crowded = (PanelRevision.objects.values("panel_id").annotate(count=Count("id"))
               .filter(count__gt=keep).values_list("panel_id", flat=True))
    doomed = 0
    for panel_pk in crowded:
        numbers = PanelRevision.objects.filter(panel_id=panel_pk).order_by("-number").values_list("number", flat=True)
        oldest_kept = numbers[keep - 1]
        old = PanelRevision.objects.filter(panel_id=panel_pk, number__lt=oldest_kept)
        doomed += old.count() if dry_run else old.delete()[0]
    return doomed


def diff_lines(revision: PanelRevision) -> list[str]:
    """A unified diff from the previous revision's source to this one's (every line added for the first)."""
    previous = previous_of(revision)
    before = previous.source if previous is not None else ""
    label = f"r{previous.number}" if previous is not None else "empty"
    return list(difflib.unified_diff(before.splitlines(), revision.source.splitlines(),
                                     fromfile=label, tofile=f"r{revision.number}", lineterm=""))
