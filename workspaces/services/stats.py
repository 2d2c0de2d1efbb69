"""Figures about panels for health and metrics."""

from workspaces.models import Panel, PanelStatus


def active_panel_count() -> int:
    return Panel.objects.filter(status=PanelStatus.RUNNING).count()
