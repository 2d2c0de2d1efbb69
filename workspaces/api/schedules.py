"""POST …/panels/{id}/schedules/{name}/pause/, /resume/ and /run/: steering a panel's schedules."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework.request import Request
from rest_framework.response import Response

from workspaces import access
from workspaces.api import schema
from workspaces.api.serializers import ScheduleSerializer, ToolResultSerializer
from workspaces.api.views import NexusViewSet, run_service
from workspaces.models import Schedule
from workspaces.services import panels as panel_service
from workspaces.services import schedules as schedule_service

RUN_RESULT = inline_serializer(
    "ScheduleRunResult",
    {"schedule": ScheduleSerializer(), "result": ToolResultSerializer()},
)


@extend_schema(tags=["panels"], request=None)
class PanelScheduleViewSet(NexusViewSet):
    required_permissions = {
        "pause": access.PANEL_EXECUTE,
        "resume": access.PANEL_EXECUTE,
        "run": access.PANEL_EXECUTE,
    }

    def _schedule(self, panel_id: str, name: str) -> Schedule:
        panel = panel_service.get_panel(self.scoped_workspace(), panel_id)
        return schedule_service.get_schedule(panel, name)

    @extend_schema(summary="Pause a schedule: its ticks stop until it is resumed",
                   responses={200: ScheduleSerializer, **schema.errors(401, 403, 404)})
    def pause(self, request: Request, panel_id: str, name: str, **kwargs: Any) -> Response:
        return Response(ScheduleSerializer(schedule_service.pause(self._schedule(panel_id, name))).data)

    @extend_schema(
        summary="Resume a paused schedule",
        description="The next tick is one period from now; ticks that fell in the pause are not caught up.",
        responses={200: ScheduleSerializer, **schema.errors(401, 403, 404)},
    )
    def resume(self, request: Request, panel_id: str, name: str, **kwargs: Any) -> Response:
        return Response(ScheduleSerializer(schedule_service.resume(self._schedule(panel_id, name))).data)

    @extend_schema(
        summary="Run a schedule's tool now, once",
        description=(
            "Runs the tool with the schedule's args, recorded as one of the schedule's runs; the timetable "
            "does not move. A handler that fails is not an HTTP error: `result.status` is `error`."
        ),
        responses={200: RUN_RESULT, **schema.errors(400, 401, 403, 404, 409, 503)},
    )
    def run(self, request: Request, panel_id: str, name: str, **kwargs: Any) -> Response:
        schedule = self._schedule(panel_id, name)
        result = run_service(schedule_service.run_now, schedule, self.actor)
        schedule.refresh_from_db()
        return Response({"schedule": ScheduleSerializer(schedule).data, "result": result})


def action(name: str) -> Any:
    return PanelScheduleViewSet.as_view({"post": name})
