"""Extensions that handlers reach through `$ext`: the registry and the built-in ones."""

from .registry import (
    DEFAULT_EXTENSION_PATHS,
    Denial,
    DenialHook,
    Extension,
    ExtensionConfigError,
    ExtensionDenied,
    ExtensionError,
    ExtensionRegistry,
)

__all__ = [
    "DEFAULT_EXTENSION_PATHS",
    "Denial",
    "DenialHook",
    "Extension",
    "ExtensionConfigError",
    "ExtensionDenied",
    "ExtensionError",
    "ExtensionRegistry",
]
