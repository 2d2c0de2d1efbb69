from django.urls import path

from workspaces import views

urlpatterns = [
    path("", views.workspace_list, name="workspace-list"),
    path("<slug:slug>/", views.panel_list, name="panel-list"),
    path("<slug:slug>/panels/<str:panel_id>/", views.panel_page, name="panel-page"),
    path("<slug:slug>/panels/<str:panel_id>/state/", views.panel_state, name="panel-page-state"),
]
