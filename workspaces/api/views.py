"""REST views: parse the request, ask the permission class, call the panel service, answer.

No panel logic lives here; everything that changes a panel goes through
``workspaces.services.panels``. The service is async (handlers may wait on extensions),
so these synchronous DRF views drive it with ``async_to_sync``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate, get_user_model
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from nexus.errors import error_response
from workspaces import access, presenters
from workspaces.api import schema
from workspaces.api.errors import APIError
from workspaces.api.parsers import JSONParser
from workspaces.api.permissions import WorkspaceAccess, principal_of
from workspaces.api.revision_serializers import PanelUpdateResultSerializer, PanelUpdateSerializer
from workspaces.api.serializers import (
    AccessTokenSerializer,
    FromNXMLSerializer,
    KernelMeSerializer,
    KernelTokenRequestSerializer,
    KernelTokenSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    PanelCreatedSerializer,
    PanelCreateSerializer,
    PanelDetailSerializer,
    PanelListSerializer,
    PanelStateSerializer,
    PanelSummarySerializer,
    TokenPairSerializer,
    TokenRefreshRequestSerializer,
    TokenRequestSerializer,
    ToolResultSerializer,
    ToolRunSerializer,
    ValidateRequestSerializer,
    ValidateResultSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)
from workspaces.api.throttling import FailedLogins, client_address, login_name, login_throttles
from workspaces.models import Membership, Panel, PanelStatus, Workspace
from workspaces.services import panels as panel_service
from workspaces.services import workspaces as workspace_service
from workspaces.services.connections import release_connection
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ServiceError
from workspaces.services.tokens import TokenRequestError, mint_pair

T = TypeVar("T")

# Route prefixes whose unknown URLs and crashes answer with the JSON error body.
JSON_PREFIXES = ("/api/", "/panels")


def run_service(func: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    """Call an async panel-service function from a synchronous view."""
    release_connection()
    return async_to_sync(func)(*args, **kwargs)


# ---------------------------------------------------------------- auth


@extend_schema(
    tags=["auth"],
    summary="Obtain a JWT pair",
    description=(
        "Exchange a username and password for an access and a refresh token. Optional "
        "`workspace_id` and `permissions` become claims that narrow what the tokens may do."
    ),
    request=TokenRequestSerializer,
    responses={200: TokenPairSerializer, **schema.errors(400, 401)},
    auth=[],
)
class TokenView(TokenObtainPairView):
    serializer_class = TokenRequestSerializer
    throttle_classes = login_throttles()

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:
            FailedLogins().record_failure(login_name(request.data), client_address(request))
            raise


@extend_schema(
    tags=["auth"],
    summary="Refresh an access token",
    description="A new access token with the same claims as the refresh token.",
    request=TokenRefreshRequestSerializer,
    responses={200: AccessTokenSerializer, **schema.errors(400, 401)},
    auth=[],
)
class TokenRefreshAPIView(TokenRefreshView):
    serializer_class = TokenRefreshRequestSerializer


# ---------------------------------------------------------------- shared base


class NexusViewSet(viewsets.ViewSet):
    """Views that act in a workspace, checked by WorkspaceAccess before any handler runs."""

    permission_classes = [WorkspaceAccess]
    # Action -> permission it needs; an action missing here (an unmapped HTTP method)
    # needs panel:read so that members see 405 and everybody else 401/404.
    required_permissions: ClassVar[dict[str, str | None]] = {}
    workspace: Workspace | None = None
    role: str | None = None

    def workspace_slug(self) -> str | None:
        return self.kwargs.get("slug")

    def required_permission(self) -> str | None:
        return self.required_permissions.get(self.action or "", access.PANEL_READ)

    def workspace_missing(self, slug: str) -> str:
        return f"Workspace '{slug}' not found"

    @property
    def actor(self) -> str:
        return principal_of(self.request).username

    def scoped_workspace(self) -> Workspace:
        assert self.workspace is not None, "WorkspaceAccess resolves the workspace first"
        return self.workspace

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ServiceError):
            exc = APIError(exc.code, exc.message, exc.details)
        return super().handle_exception(exc)


def _roles_of(user: Any) -> dict[int, str]:
    return dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))


# ---------------------------------------------------------------- workspaces


@extend_schema_view(
    list=extend_schema(summary="Workspaces the caller belongs to",
                       responses={200: WorkspaceSerializer(many=True), **schema.errors(401)}),
    create=extend_schema(summary="Create a workspace (the caller becomes its owner)",
                         request=WorkspaceSerializer,
                         responses={201: WorkspaceSerializer, **schema.errors(400, 401, 403)}),
    retrieve=extend_schema(summary="One workspace",
                           responses={200: WorkspaceSerializer, **schema.errors(401, 403, 404)}),
    partial_update=extend_schema(summary="Rename a workspace (owners; its panel limit is set by staff)",
                                 request=WorkspaceUpdateSerializer,
                                 responses={200: WorkspaceSerializer, **schema.errors(400, 401, 403, 404)}),
    destroy=extend_schema(summary="Delete a workspace and all its panels (owners)",
                          responses={204: None, **schema.errors(401, 403, 404)}),
)
@extend_schema(tags=["workspaces"])
class WorkspaceViewSet(NexusViewSet):
    required_permissions = {
        "list": None,
        "create": access.WORKSPACE_ADMIN,
        "retrieve": access.PANEL_READ,
        "partial_update": access.WORKSPACE_ADMIN,
        "destroy": access.WORKSPACE_ADMIN,
    }

    def _serialize(self, workspace: Workspace | Any, many: bool = False, status_code: int = 200) -> Response:
        context = {"roles": _roles_of(self.request.user)}
        return Response(WorkspaceSerializer(workspace, many=many, context=context).data, status=status_code)

    def list(self, request: Request) -> Response:
        workspaces = access.visible_workspaces(principal_of(request)).annotate(panel_count=Count("panels"))
        return self._serialize(workspaces.order_by("slug"), many=True)

    def create(self, request: Request) -> Response:
        body = WorkspaceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workspace = workspace_service.create_workspace(
            body.validated_data["slug"], body.validated_data["name"], owner=request.user
        )
        return self._serialize(workspace, status_code=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, slug: str) -> Response:
        return self._serialize(self.scoped_workspace())

    def partial_update(self, request: Request, slug: str) -> Response:
        body = WorkspaceUpdateSerializer(self.scoped_workspace(), data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return self._serialize(workspace_service.update_workspace(self.scoped_workspace(), **body.validated_data))

    def destroy(self, request: Request, slug: str) -> Response:
        run_service(workspace_service.delete_workspace, self.scoped_workspace(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- members


@extend_schema_view(
    list=extend_schema(summary="Members and their roles",
                       responses={200: MemberSerializer(many=True), **schema.errors(401, 403, 404)}),
    create=extend_schema(summary="Add a member (owners)", request=MemberCreateSerializer,
                         responses={201: MemberSerializer, **schema.errors(400, 401, 403, 404)}),
    retrieve=extend_schema(summary="One member", responses={200: MemberSerializer, **schema.errors(401, 403, 404)}),
    partial_update=extend_schema(summary="Change a member's role (owners)", request=MemberUpdateSerializer,
                                 responses={200: MemberSerializer, **schema.errors(400, 401, 403, 404)}),
    destroy=extend_schema(summary="Remove a member (owners)",
                          responses={204: None, **schema.errors(400, 401, 403, 404)}),
)
@extend_schema(tags=["members"])
class MemberViewSet(NexusViewSet):
    """A workspace always keeps at least one owner: the last one can be neither demoted nor removed."""

    required_permissions = {
        "list": access.PANEL_READ,
        "retrieve": access.PANEL_READ,
        "create": access.WORKSPACE_ADMIN,
        "partial_update": access.WORKSPACE_ADMIN,
        "destroy": access.WORKSPACE_ADMIN,
    }

    def _membership(self, username: str) -> Membership:
        memberships = Membership.objects.select_related("user").filter(workspace=self.scoped_workspace())
        membership = memberships.filter(user__username=username).first()
        if membership is None:
            raise APIError(ErrorCode.NOT_FOUND, f"'{username}' is not a member of '{self.scoped_workspace().slug}'")
        return membership

    def list(self, request: Request, slug: str) -> Response:
        memberships = Membership.objects.filter(workspace=self.scoped_workspace()).select_related("user")
        return Response(MemberSerializer(memberships.order_by("user__username"), many=True).data)

    def retrieve(self, request: Request, slug: str, username: str) -> Response:
        return Response(MemberSerializer(self._membership(username)).data)

    def create(self, request: Request, slug: str) -> Response:
        body = MemberCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = workspace_service.add_member(
            self.scoped_workspace(), body.validated_data["username"], body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, slug: str, username: str) -> Response:
        body = MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = self._membership(username).user
        membership = workspace_service.change_role(self.scoped_workspace(), user, body.validated_data["role"])
        return Response(MemberSerializer(membership).data)

    def destroy(self, request: Request, slug: str, username: str) -> Response:
        workspace_service.remove_member(self.scoped_workspace(), self._membership(username).user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- panels


LIFECYCLE_RESULT = inline_serializer("PanelLifecycleResult", {
    "panelId": serializers.CharField(),
    "status": serializers.ChoiceField(choices=PanelStatus.values),
    "error": serializers.JSONField(allow_null=True, help_text="The mount handler's error when it failed"),
})


def _lifecycle_result(panel: Panel) -> dict[str, Any]:
    return {"panelId": panel.panel_id, "status": panel.status, "error": panel.last_error}


@extend_schema(tags=["panels"])
class PanelViewSet(NexusViewSet):
    required_permissions = {
        "list": access.PANEL_READ,
        "create": access.PANEL_CREATE,
        "validate": access.PANEL_CREATE,
        "from_nxml": access.PANEL_CREATE,
        "retrieve": access.PANEL_READ,
        "state": access.PANEL_READ,
        "run_tool": access.PANEL_EXECUTE,
        "start": access.PANEL_EXECUTE,
        "stop": access.PANEL_EXECUTE,
        "destroy": access.PANEL_DELETE,
        "partial_update": access.PANEL_CREATE,
    }

    def websocket_url(self, panel: Panel) -> str:
        return presenters.websocket_url(self.request, panel)

    def _panel(self, panel_id: str) -> Panel:
        return panel_service.get_panel(self.scoped_workspace(), panel_id)

    @extend_schema(summary="Panels of the workspace",
                   responses={200: PanelListSerializer, **schema.errors(401, 403, 404)})
    def list(self, request: Request, **kwargs: Any) -> Response:
        workspace = self.scoped_workspace()
        panels = Panel.objects.filter(workspace=workspace).select_related("workspace").order_by("panel_id")
        summaries = PanelSummarySerializer(panels, many=True).data
        return Response({"panels": summaries, "totalPanels": len(summaries), "maxPanels": workspace.panel_limit})

    @extend_schema(
        summary="Create a panel",
        description=(
            "Validates the NXML, stores the panel and runs its `mount` handler. A failing mount "
            "still answers 201, with `status: error` and the handler's `error`; the panel is kept "
            "with status `error`."
        ),
        request=PanelCreateSerializer,
        responses={201: PanelCreatedSerializer, **schema.errors(400, 401, 403, 404, 409, 413, 429, 503)},
    )
    def create(self, request: Request, **kwargs: Any) -> Response:
        body = PanelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        panel, outcome = run_service(
            panel_service.create_panel, self.scoped_workspace(), data["source"],
            panel_id=data.get("id"), extension_config=data.get("extensions"), actor=self.actor,
        )
        return self._created(panel, outcome)

    def _created(self, panel: Panel, outcome: Any) -> Response:
        created: dict[str, Any] = {
            "status": "ok",
            "panelId": panel.panel_id,
            "websocket": self.websocket_url(panel),
            "initialState": panel.state,
            "stateVersion": panel.state_version,
        }
        if outcome is not None and outcome.status == "error":
            created["status"] = "error"
            created["error"] = outcome.error
        return Response(created, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Validate NXML without storing anything",
        description="Always 200 for a well-formed request; `valid` tells whether the NXML is accepted.",
        request=ValidateRequestSerializer,
        responses={200: ValidateResultSerializer, **schema.errors(400, 401, 403, 404, 413)},
    )
    def validate(self, request: Request, **kwargs: Any) -> Response:
        body = ValidateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        errors = panel_service.validate_source(body.validated_data["source"])
        return Response({"valid": not errors, "errors": errors})

    @extend_schema(summary="One panel: state, tools with their args schema, view tree",
                   responses={200: PanelDetailSerializer, **schema.errors(401, 403, 404)})
    def retrieve(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        return Response(PanelDetailSerializer(self._panel(panel_id)).data)

    @extend_schema(
        summary="Replace the panel's NXML in place",
        description=(
            "Validates the source, stores it as a new revision and migrates the state (docs/authoring.md): "
            "unchanged keys keep their values, new keys start at their default, removed keys are dropped, "
            "a key whose type changed is converted when that is lossless, else reset. The mount handler "
            "does not run again; an `update` lifecycle handler does, if declared. Open sockets get "
            "DEFINITION, then the PATCH of the migration. Editors and owners."
        ),
        request=PanelUpdateSerializer,
        responses={200: PanelUpdateResultSerializer, **schema.errors(400, 401, 403, 404, 409, 413, 503)},
    )
    def partial_update(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        body = PanelUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        update = run_service(
            panel_service.update_source, self._panel(panel_id), data["source"], actor=self.actor,
            message=data.get("message", ""), base_revision=data.get("baseRevision"),
        )
        return Response(update.body())

    @extend_schema(summary="The panel's committed state",
                   responses={200: PanelStateSerializer, **schema.errors(401, 403, 404)})
    def state(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        panel = self._panel(panel_id)
        return Response({"panelId": panel.panel_id, "state": panel.state, "stateVersion": panel.state_version})

    @extend_schema(
        summary="Run a tool",
        description=(
            "Runs the tool's handler to its end (waiting on extension calls). A handler that fails "
            "is not an HTTP error: the answer is 200 with `status: error`."
        ),
        request=ToolRunSerializer,
        responses={200: ToolResultSerializer, **schema.errors(400, 401, 403, 404, 413, 429, 503)},
    )
    def run_tool(self, request: Request, panel_id: str, tool: str, **kwargs: Any) -> Response:
        body = ToolRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        panel = self._panel(panel_id)
        outcome = run_service(
            panel_service.run_tool, panel, tool, body.validated_data.get("args"),
            body.validated_data.get("scope"), actor=self.actor,
        )
        return Response(outcome.body())

    @extend_schema(
        summary="Start the panel: run its mount handler",
        description=(
            "For a stopped panel, or one whose mount failed. A mount handler that fails again is "
            "not an HTTP error: the answer is 200 with `status: error` and the handler's `error`."
        ),
        request=None,
        responses={200: LIFECYCLE_RESULT, **schema.errors(401, 403, 404, 503)},
    )
    def start(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        panel = self._panel(panel_id)
        run_service(panel_service.mount, panel, self.actor)
        return Response(_lifecycle_result(panel))

    @extend_schema(summary="Stop the panel: run its unmount handler; its tools refuse to run until it is started",
                   request=None, responses={200: LIFECYCLE_RESULT, **schema.errors(401, 403, 404, 503)})
    def stop(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        panel = self._panel(panel_id)
        run_service(panel_service.stop_panel, panel, self.actor)
        return Response(_lifecycle_result(panel))

    @extend_schema(summary="Run unmount, close the panel's sockets and delete it",
                   responses={204: None, **schema.errors(401, 403, 404)})
    def destroy(self, request: Request, panel_id: str, **kwargs: Any) -> Response:
        run_service(panel_service.delete_panel, self._panel(panel_id), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["kernel"],
    description=(
        "Kernel-compatible route. The workspace is the token's `workspace_id` claim; without "
        "that claim (or with authentication off) it is the workspace `default`."
    ),
)
class KernelPanelViewSet(PanelViewSet):
    """The same panel operations, for clients of the original kernel: no workspace in the path."""

    def workspace_slug(self) -> str | None:
        return principal_of(self.request).token_workspace or access.DEFAULT_WORKSPACE

    def workspace_missing(self, slug: str) -> str:
        if self.request.auth is not None and not principal_of(self.request).token_workspace:
            return (
                f"The token has no `workspace_id` claim, so this route acts in the workspace '{slug}', "
                "which does not exist; get a token with a workspace_id (POST /api/v1/auth/token/ "
                'with "workspace_id") or use /api/v1/workspaces/{slug}/panels/'
            )
        return super().workspace_missing(slug)

    def websocket_url(self, panel: Panel) -> str:
        return f"{presenters.websocket_origin(self.request)}/panels/{panel.panel_id}/ws"


    @extend_schema(
        summary="Create a panel from NXML (original kernel)",
        description=(
            "The panel id is the NXML document's `id`, with a suffix when a panel of the workspace "
            "has it already; `initialState` replaces declared defaults. Answers as panel creation."
        ),
        request=FromNXMLSerializer,
        responses={201: PanelCreatedSerializer, **schema.errors(400, 401, 403, 404, 413, 429, 503)},
    )
    def from_nxml(self, request: Request, **kwargs: Any) -> Response:
        body = FromNXMLSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        panel, outcome = run_service(
            panel_service.create_panel, self.scoped_workspace(), body.validated_data["nxmlSource"],
            initial_state=body.validated_data.get("initialState"), actor=self.actor,
        )
        return self._created(panel, outcome)


@extend_schema(exclude=True)
class KernelPanelSlashViewSet(KernelPanelViewSet):
    """The kernel routes spelled with a trailing slash; left out of the schema as a duplicate."""


# ---------------------------------------------------------------- original kernel: auth


@extend_schema(
    tags=["kernel"],
    summary="Obtain an access token (original kernel)",
    description=(
        "JSON or form body: `username` (or `email`) and `password`, optionally `workspace_id`. "
        "Failed logins are throttled as on /api/v1/auth/token/."
    ),
    request=KernelTokenRequestSerializer,
    responses={200: KernelTokenSerializer, **schema.errors(400, 401)},
    auth=[],
)
class KernelTokenView(APIView):
    authentication_classes: list[type[Any]] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes = login_throttles()

    @extend_schema(operation_id="kernel_auth_token")
    def post(self, request: Request) -> Response:
        body = KernelTokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = authenticate(request, username=data.get("username") or _username_for_email(data["email"]),
                            password=data["password"])
        if user is None or not user.is_active:
            FailedLogins().record_failure(login_name(data), client_address(request))
            raise exceptions.AuthenticationFailed("No active account found with the given credentials")
        try:
            pair = mint_pair(user, data.get("workspace_id"))
        except TokenRequestError as exc:
            raise APIError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        return Response({"access_token": pair.access, "token_type": "bearer"})


def _username_for_email(email: str) -> str:
    users = get_user_model().objects.filter(email__iexact=email.strip())[:2]
    return users[0].get_username() if len(users) == 1 else email


@extend_schema(
    tags=["kernel"],
    summary="The caller (original kernel)",
    responses={200: KernelMeSerializer, **schema.errors(401)},
)
class KernelMeView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        slugs = access.visible_workspaces(principal).order_by("slug").values_list("slug", flat=True)
        return Response({
            "username": principal.user.get_username(),
            "email": getattr(principal.user, "email", "") or "",
            "workspace_id": principal.token_workspace,
            "workspaces": list(slugs),
        })


# ---------------------------------------------------------------- JSON 404 and 500


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_response(404, ErrorCode.NOT_FOUND, f"No route for {request.method} {request.path}")
    return defaults.page_not_found(request, exception or Exception("Not found"))


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return error_response(500, ErrorCode.INTERNAL_ERROR, "Internal server error")
    return defaults.server_error(request)

