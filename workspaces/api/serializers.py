"""Request and response shapes of the REST API (also what the OpenAPI schema shows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.serializers import TokenObtainSerializer, TokenRefreshSerializer

from workspaces.access import ALL_PERMISSIONS
from workspaces.models import PANEL_ID_PATTERN, Membership, Panel, Role, Schedule, Workspace
from workspaces.services import presence, quotas
from workspaces.services.tokens import TokenRequestError, mint_pair

PERMISSION_CHOICES = sorted(ALL_PERMISSIONS)
CREATE_STATUSES = ("ok", "error")
RESULT_STATUSES = ("success", "error")

# ---------------------------------------------------------------- errors


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable error code, e.g. NOT_FOUND.")
    message = serializers.CharField()
    details = serializers.JSONField(required=False, help_text="Extra data; depends on the code.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class NXMLErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="NXML error code, e.g. UNKNOWN_ELEMENT or HANDLER_SYNTAX.")
    message = serializers.CharField()
    line = serializers.IntegerField(help_text="1-based line in the NXML source.")
    column = serializers.IntegerField(help_text="1-based column in the NXML source.")


class ExecutionErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="TIMEOUT, PERMISSION_DENIED, EXECUTION_ERROR, ...")
    message = serializers.CharField()
    stack = serializers.CharField(required=False)
    location = serializers.JSONField(required=False, help_text='{"line", "column"} within the handler.')
    snippet = serializers.CharField(required=False)


# ---------------------------------------------------------------- auth


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()


class TokenRequestSerializer(TokenObtainSerializer):
    """Username and password, plus optional claims that narrow the issued tokens."""

    workspace_id = serializers.SlugField(
        required=False, allow_null=True, max_length=64,
        help_text="Limit the tokens to this workspace (the user must be a member).",
    )
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSION_CHOICES), required=False, allow_null=True,
        help_text="Limit the tokens to these permissions (a subset of the role's).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        super().validate(attrs)  # authenticates; sets self.user
        try:
            pair = mint_pair(self.user, attrs.get("workspace_id"), attrs.get("permissions"))
        except TokenRequestError as exc:
            raise serializers.ValidationError({"workspace_id": [str(exc)]}) from None
        return pair.as_dict()


class TokenRefreshRequestSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, answering 401 instead of failing when the token's user is gone."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise exceptions.AuthenticationFailed("The token's user no longer exists") from None
        except ExpiredTokenError:
            raise exceptions.AuthenticationFailed(
                "The refresh token has expired; get a new pair with /api/v1/auth/token/"
            ) from None
        except TokenError:
            raise exceptions.AuthenticationFailed("The token is not valid") from None


# ---------------------------------------------------------------- workspaces and members


STAFF_ONLY_FIELDS = ("maxPanels", "quotas")
STAFF_ONLY_MESSAGE = "Limits are set by staff in the admin console; leave this field out of the request."


class WorkspaceQuotasSerializer(serializers.Serializer):
    maxConcurrent = serializers.IntegerField(help_text="Executions at once, per server process.")
    executionsPerMinute = serializers.IntegerField(help_text="Tool runs started per minute.")
    sandboxMsPerMinute = serializers.IntegerField(help_text="Sandbox milliseconds used per minute.")
    httpCallsPerMinute = serializers.IntegerField(help_text="nexus.http calls made by handlers per minute.")


class WorkspaceSerializer(serializers.ModelSerializer):
    maxPanels = serializers.IntegerField(
        source="panel_limit", read_only=True,
        help_text="Panels allowed in the workspace. Read-only here: staff set it in the admin console.",
    )
    role = serializers.SerializerMethodField(help_text="The caller's role in this workspace.")
    panelCount = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)
    quotas = serializers.SerializerMethodField(
        help_text="The workspace's quotas (owners only; null for other roles). Set by staff in the admin console.",
    )

    class Meta:
        model = Workspace
        fields = ["slug", "name", "maxPanels", "role", "panelCount", "quotas", "createdAt", "updatedAt"]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            refused = {name: [STAFF_ONLY_MESSAGE] for name in STAFF_ONLY_FIELDS if name in data}
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)

    def get_role(self, workspace: Workspace) -> str | None:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(workspace.pk)

    @extend_schema_field(WorkspaceQuotasSerializer(allow_null=True))
    def get_quotas(self, workspace: Workspace) -> dict[str, int] | None:
        if self.get_role(workspace) != Role.OWNER:
            return None
        return quotas.describe(workspace.slug)

    def get_panelCount(self, workspace: Workspace) -> int:
        count = getattr(workspace, "panel_count", None)
        return int(count) if count is not None else workspace.panels.count()


class WorkspaceUpdateSerializer(WorkspaceSerializer):
    class Meta(WorkspaceSerializer.Meta):
        read_only_fields = ["slug"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "createdAt"]


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)

    def validate_username(self, value: str) -> Any:
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"No user named '{value}'")
        return user


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# ---------------------------------------------------------------- panels


class SourceField(serializers.CharField):
    """NXML text, kept exactly as sent; numbers and other JSON types are refused, not coerced."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, help_text="The NXML document.", **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class PanelCreateSerializer(serializers.Serializer):
    id = serializers.RegexField(
        PANEL_ID_PATTERN, required=False, allow_null=True,
        help_text=("Panel id ([A-Za-z0-9_-]{1,64}, not 'validate'). When absent: the id of <NexusPanel>, "
                   "with a random suffix if the workspace already has that id."),
    )
    source = SourceField()  # type: ignore[assignment]  # the API's field name shadows Field.source
    extensions = serializers.DictField(
        child=serializers.DictField(), required=False, allow_null=True,
        help_text='Per-alias extension configuration, e.g. {"http": {"baseURL": "https://…"}}.',
    )


class PanelCreatedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CREATE_STATUSES, help_text="error: the mount handler failed.")
    panelId = serializers.CharField()
    websocket = serializers.CharField(help_text="WebSocket URL of the panel.")
    initialState = serializers.JSONField()
    stateVersion = serializers.IntegerField()
    error = ExecutionErrorSerializer(required=False, help_text="Present when status is error.")


class ValidateRequestSerializer(serializers.Serializer):
    source = SourceField()  # type: ignore[assignment]  # the API's field name shadows Field.source


class ValidateResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = NXMLErrorSerializer(many=True)  # type: ignore[assignment]  # shadows Serializer.errors


class PanelSummarySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="panel_id", read_only=True)
    stateVersion = serializers.IntegerField(source="state_version", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastActivity = serializers.DateTimeField(source="last_activity", read_only=True)
    clientCount = serializers.SerializerMethodField()

    class Meta:
        model = Panel
        fields = ["id", "title", "version", "status", "stateVersion", "createdAt", "lastActivity", "clientCount"]

    def get_clientCount(self, panel: Panel) -> int:
        return presence.client_count(panel.workspace.slug, panel.panel_id)


@extend_schema_serializer(many=False)  # one object, although the view's action is named "list"
class PanelListSerializer(serializers.Serializer):
    panels = PanelSummarySerializer(many=True)
    totalPanels = serializers.IntegerField()
    maxPanels = serializers.IntegerField()


class ToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    argsSchema = serializers.JSONField(help_text="JSON Schema of the tool's args object.")


class ScheduleSerializer(serializers.ModelSerializer):
    expression = serializers.CharField(read_only=True, help_text="'every 5m', or the cron expression.")
    paused = serializers.BooleanField(read_only=True, help_text="Paused schedules run only when asked to (run/).")
    nextRunAt = serializers.DateTimeField(source="next_run_at", read_only=True)
    lastRunAt = serializers.DateTimeField(source="last_run_at", read_only=True, allow_null=True)
    lastStatus = serializers.CharField(source="last_status", read_only=True,
                                       help_text="success or error; empty before the first run.")
    lastError = serializers.JSONField(source="last_error", read_only=True, allow_null=True,
                                      help_text="{code, message} of the last run when it failed.")

    class Meta:
        model = Schedule
        fields = ["name", "tool", "expression", "timezone", "args", "missed", "paused", "nextRunAt",
                  "lastRunAt", "lastStatus", "lastError", "runs", "failures", "skipped"]
        read_only_fields = fields


class PanelDetailSerializer(PanelSummarySerializer):
    state = serializers.JSONField(read_only=True)
    schedules = ScheduleSerializer(many=True, read_only=True, help_text="The panel's <Schedule>s.")
    tools = serializers.SerializerMethodField()
    view = serializers.SerializerMethodField(help_text="The component tree the browser renders.")
    error = serializers.JSONField(source="last_error", read_only=True,
                                  help_text="The last lifecycle failure, null when none.")
    revision = serializers.SerializerMethodField(help_text="The number of the panel's current revision.")
    waitingHandlers = serializers.SerializerMethodField(
        help_text="Handlers of the panel waiting on an extension call (docs/suspensions.md)."
    )

    class Meta(PanelSummarySerializer.Meta):
        fields = [*PanelSummarySerializer.Meta.fields, "state", "tools", "view", "error", "schedules", "revision",
                  "waitingHandlers"]

    def get_waitingHandlers(self, panel: Panel) -> int:
        from workspaces.services.suspensions import waiting_on

        return waiting_on(panel.pk)

    def get_revision(self, panel: Panel) -> int:
        from workspaces.services.panels.revisions import current_number

        return current_number(panel)

    def _definition(self, panel: Panel) -> Any:
        from workspaces.services.panels import definition_of

        return definition_of(panel)

    @extend_schema_field(ToolSerializer(many=True))
    def get_tools(self, panel: Panel) -> list[dict[str, Any]]:
        return [
            {"name": tool.name, "description": tool.description, "argsSchema": tool.args_schema()}
            for tool in self._definition(panel).tools
        ]

    def get_view(self, panel: Panel) -> dict[str, Any]:
        view: dict[str, Any] = self._definition(panel).view_tree()
        return view


class PanelStateSerializer(serializers.Serializer):
    panelId = serializers.CharField()
    state = serializers.JSONField()
    stateVersion = serializers.IntegerField()


class ToolRunSerializer(serializers.Serializer):
    args = serializers.JSONField(required=False, allow_null=True, help_text="The tool's arguments (an object).")
    scope = serializers.JSONField(required=False, allow_null=True,
                                  help_text="Values for $scope, as an Iterate row would give.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            names = ", ".join(repr(name)[:80] for name in unknown[:10])
            raise serializers.ValidationError(
                f"The body has unknown fields {names}; the tool's arguments go in 'args', "
                'e.g. {"args": {"name": "value"}}'
            )
        return attrs


class MutationSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField(required=False)
    operation = serializers.ChoiceField(choices=["set", "delete"])


class EventSerializer(serializers.Serializer):
    name = serializers.CharField()
    payload = serializers.JSONField()


class ViewCommandSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["setFilter", "scrollTo", "focus"])
    componentId = serializers.CharField()
    args = serializers.JSONField()


class ToolResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RESULT_STATUSES)
    mutations = MutationSerializer(many=True)
    events = EventSerializer(many=True)
    viewCommands = ViewCommandSerializer(many=True)
    returnValue = serializers.JSONField(allow_null=True)
    stateVersion = serializers.IntegerField()
    error = ExecutionErrorSerializer(required=False)


# ---------------------------------------------------------------- original kernel


class KernelTokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(required=False, help_text="The username, or give `email` instead.")
    email = serializers.CharField(required=False)
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    workspace_id = serializers.SlugField(required=False, allow_null=True, max_length=64,
                                         help_text="Limit the token to this workspace (the user must be a member).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("username") and not attrs.get("email"):
            raise serializers.ValidationError("Give `username` (or `email`) and `password`")
        return attrs


class KernelTokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["bearer"])


class KernelMeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    workspace_id = serializers.CharField(allow_null=True, help_text="The token's workspace claim, if any.")
    workspaces = serializers.ListField(child=serializers.CharField(), help_text="Slugs of the user's workspaces.")


class FromNXMLSerializer(serializers.Serializer):
    nxmlSource = SourceField()
    initialState = serializers.JSONField(required=False, allow_null=True,
                                         help_text="Values that replace the declared defaults of <State> keys.")
