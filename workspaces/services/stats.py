"""Figures about panels for health and metrics."""

import logging

from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError

from workspaces.models import Panel, PanelStatus

logger = logging.getLogger(__name__)
_last_count = 0


def active_panel_count() -> int:
    return Panel.objects.filter(status=PanelStatus.RUNNING).count()


def active_panel_gauge() -> float:
    """For the metrics scrape: the last known figure when the database does not answer."""
    global _last_count
    try:
        _last_count = active_panel_count()
    except (DatabaseError, SynchronousOnlyOperation) as exc:
        # Down database, or a scrape from async code: keep the last figure rather than fail it.
        logger.warning("could not count active panels: %s", exc)
    return float(_last_count)
