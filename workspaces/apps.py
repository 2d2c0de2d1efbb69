from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspaces and panels"
    default_auto_field = "django.db.models.BigAutoField"
