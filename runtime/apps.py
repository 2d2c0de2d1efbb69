"""Lets Django list the sandbox runtime as an app; the runtime itself never needs Django."""

from django.apps import AppConfig


class RuntimeAppConfig(AppConfig):
    name = "runtime"
    verbose_name = "Sandbox runtime"
