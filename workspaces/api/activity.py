"""GET …/panels/{id}/activity/: the panel's recent handler runs, newest first, one page at a time."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from workspaces import access
from workspaces.api import schema
from workspaces.api.views import NexusViewSet
from workspaces.models import PanelRun, RunKind
from workspaces.services import activity
from workspaces.services import panels as panel_service


class LogLineSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["debug", "info", "warn", "error"])
    message = serializers.CharField()


class RunErrorSerializer(serializers.Serializer):
    code = serializers.CharField(source="error_code")
    message = serializers.CharField(source="error_message")


class PanelRunSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=RunKind.choices, help_text="tool, or lifecycle (mount, unmount).")
    handler = serializers.CharField(help_text="The tool's name, or the lifecycle event.")
    actor = serializers.CharField(help_text="Who triggered it (a username, or the command that did).")
    startedAt = serializers.DateTimeField(source="started_at")
    status = serializers.ChoiceField(choices=["success", "error"])
    durationMs = serializers.FloatField(source="duration_ms")
    error = serializers.SerializerMethodField()
    logs = LogLineSerializer(many=True, help_text="The lines the handler wrote with $log, in order.")

    class Meta:
        model = PanelRun
        fields = ["id", "kind", "handler", "actor", "startedAt", "status", "durationMs", "error", "logs"]

    @staticmethod
    def get_error(run: PanelRun) -> dict[str, str] | None:
        return RunErrorSerializer(run).data if run.error_code else None  # type: ignore[return-value]


class ActivityPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = activity.RUNS_KEPT_PER_PANEL


@extend_schema(tags=["panels"])
class PanelActivityViewSet(NexusViewSet, viewsets.GenericViewSet):  # type: ignore[misc]
    required_permissions = {"list": access.PANEL_READ}
    serializer_class = PanelRunSerializer
    pagination_class = ActivityPagination

    @extend_schema(
        summary="The panel's recent runs",
        description=(
            f"Tool and lifecycle runs, newest first, with status, duration, error and the `$log` "
            f"lines. The last {activity.RUNS_KEPT_PER_PANEL} runs of each panel are kept."
        ),
        responses={200: PanelRunSerializer(many=True), **schema.errors(401, 403, 404)},
    )
    def list(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        panel = panel_service.get_panel(self.scoped_workspace(), panel_id)
        page = self.paginate_queryset(activity.runs_of(panel))
        return self.get_paginated_response(PanelRunSerializer(page, many=True).data)
