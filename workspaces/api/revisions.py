"""GET …/panels/{id}/revisions/ and …/revisions/{n}/, POST …/revisions/{n}/restore/: a panel's history."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from workspaces import access
from workspaces.api import schema
from workspaces.api.revision_serializers import (
    PanelUpdateResultSerializer,
    RestoreSerializer,
    RevisionDetailSerializer,
    RevisionSerializer,
)
from workspaces.api.views import NexusViewSet, run_service
from workspaces.services import panels as panel_service
from workspaces.services.panels import revisions


class RevisionPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema(tags=["panels"])
class PanelRevisionViewSet(NexusViewSet, viewsets.GenericViewSet):  # type: ignore[misc]
    required_permissions = {
        "list": access.PANEL_READ,
        "retrieve": access.PANEL_READ,
        "restore": access.PANEL_CREATE,
    }
    serializer_class = RevisionSerializer
    pagination_class = RevisionPagination

    @extend_schema(
        summary="The panel's revisions, newest first",
        description="Every stored source of the panel (without the source text; ask for one revision to get it).",
        responses={200: RevisionSerializer(many=True), **schema.errors(401, 403, 404)},
    )
    def list(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        panel = panel_service.get_panel(self.scoped_workspace(), panel_id)
        page = self.paginate_queryset(revisions.revisions_of(panel))
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(summary="One revision, with its source",
                   responses={200: RevisionDetailSerializer, **schema.errors(401, 403, 404)})
    def retrieve(self, request: Request, panel_id: str, number: int, **kwargs: Any) -> Response:
        panel = panel_service.get_panel(self.scoped_workspace(), panel_id)
        return Response(RevisionDetailSerializer(revisions.get_revision(panel, number)).data)

    @extend_schema(
        summary="Restore a revision: its source becomes a new revision",
        description=(
            "The state migrates as for any update (docs/authoring.md). Restoring a revision whose source "
            "is the current one stores nothing (`created: false`). Editors and owners."
        ),
        request=RestoreSerializer,
        responses={200: PanelUpdateResultSerializer, **schema.errors(400, 401, 403, 404, 503)},
    )
    def restore(self, request: Request, panel_id: str, number: int, **kwargs: Any) -> Response:
        body = RestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        panel = panel_service.get_panel(self.scoped_workspace(), panel_id)
        update = run_service(panel_service.restore_revision, panel, number, actor=self.actor,
                             message=body.validated_data.get("message", ""))
        return Response(update.body())
