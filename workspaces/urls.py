from django.urls import path

from workspaces import views

urlpatterns = [
    path("", views.workspace_list, name="workspace-list"),
    path("<slug:slug>/", views.panel_list, name="panel-list"),
    path("<slug:slug>/panels/new/", views.panel_new, name="panel-new"),
    path("<slug:slug>/editor/preview/", views.panel_preview, name="panel-preview"),
    path("<slug:slug>/panels/<str:panel_id>/", views.panel_page, name="panel-page"),
    path("<slug:slug>/panels/<str:panel_id>/state/", views.panel_state, name="panel-page-state"),
    path("<slug:slug>/panels/<str:panel_id>/edit/", views.panel_edit, name="panel-edit"),
    path("<slug:slug>/panels/<str:panel_id>/history/", views.panel_history, name="panel-history"),
    path("<slug:slug>/panels/<str:panel_id>/history/<int:number>/restore/", views.panel_restore,
         name="panel-restore"),
    path("<slug:slug>/panels/<str:panel_id>/duplicate/", views.panel_duplicate, name="panel-duplicate"),
    path("<slug:slug>/panels/<str:panel_id>/delete/", views.panel_delete, name="panel-delete"),
]
