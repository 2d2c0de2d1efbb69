"""Routes under /api/v1/ (their reference is the OpenAPI schema at /api/v1/schema/, browsable at /api/v1/docs/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from workspaces.api import views
from workspaces.api.activity import PanelActivityViewSet
from workspaces.api.revisions import PanelRevisionViewSet
from workspaces.api.schedules import action as schedule_action

app_name = "api"

workspaces = views.WorkspaceViewSet.as_view({"get": "list", "post": "create"})
workspace = views.WorkspaceViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
members = views.MemberViewSet.as_view({"get": "list", "post": "create"})
member = views.MemberViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
panels = views.PanelViewSet.as_view({"get": "list", "post": "create"})
validate = views.PanelViewSet.as_view({"post": "validate"})
panel = views.PanelViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
state = views.PanelViewSet.as_view({"get": "state"})
tool = views.PanelViewSet.as_view({"post": "run_tool"})
start = views.PanelViewSet.as_view({"post": "start"})
stop = views.PanelViewSet.as_view({"post": "stop"})
panel_activity = PanelActivityViewSet.as_view({"get": "list"})
panel_revisions = PanelRevisionViewSet.as_view({"get": "list"})
panel_revision = PanelRevisionViewSet.as_view({"get": "retrieve"})
panel_revision_restore = PanelRevisionViewSet.as_view({"post": "restore"})

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("auth/token/refresh/", views.TokenRefreshAPIView.as_view(), name="token-refresh"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("workspaces/", workspaces, name="workspaces"),
    path("workspaces/<slug:slug>/", workspace, name="workspace"),
    path("workspaces/<slug:slug>/members/", members, name="members"),
    path("workspaces/<slug:slug>/members/<str:username>/", member, name="member"),
    path("workspaces/<slug:slug>/panels/", panels, name="panels"),
    path("workspaces/<slug:slug>/panels/validate/", validate, name="panel-validate"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/", panel, name="panel"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/state/", state, name="panel-state"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/tools/<str:tool>/", tool, name="panel-tool"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/start/", start, name="panel-start"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/stop/", stop, name="panel-stop"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/activity/", panel_activity, name="panel-activity"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/revisions/", panel_revisions, name="panel-revisions"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/revisions/<int:number>/", panel_revision,
         name="panel-revision"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/revisions/<int:number>/restore/", panel_revision_restore,
         name="panel-revision-restore"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/schedules/<str:name>/pause/", schedule_action("pause"),
         name="panel-schedule-pause"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/schedules/<str:name>/resume/", schedule_action("resume"),
         name="panel-schedule-resume"),
    path("workspaces/<slug:slug>/panels/<str:panel_id>/schedules/<str:name>/run/", schedule_action("run"),
         name="panel-schedule-run"),
]
