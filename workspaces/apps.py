from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspaces and panels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runtime import metrics
        from workspaces.api import signing
        from workspaces.services import workspaces as workspace_service
        from workspaces.services.stats import active_panel_gauge

        metrics.PANELS_ACTIVE.set_function(active_panel_gauge)
        workspace_service.connect_signals()
        signing.install()
