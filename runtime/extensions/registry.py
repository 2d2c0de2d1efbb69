"""Extension base class and the registry the host uses to serve `$ext` calls.

The host builds one registry per process from a list of dotted class paths and a settings
mapping, starts it with the event loop, and awaits `registry.call(...)` whenever a handler
suspends on `await $ext.<alias>.<method>(...)`.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from runtime.metrics import EXT_CALLS_TOTAL

logger = logging.getLogger(__name__)

DEFAULT_EXTENSION_PATHS: tuple[str, ...] = (
    "runtime.extensions.http.HttpExtension",
    "runtime.extensions.timer.TimerExtension",
)

# Label values for nexus_ext_calls_total{status}.
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
STATUS_DENIED = "denied"
STATUS_NOT_FOUND = "not_found"
STATUS_CANCELLED = "cancelled"
UNKNOWN_LABEL = "unknown"


class ExtensionError(Exception):
    """A failed extension call; the message is what the handler's `catch (e)` sees."""


class ExtensionDenied(ExtensionError):
    """A call refused by policy (allow-list, address checks, scheme...). Audited."""


class ExtensionConfigError(ValueError):
    """The extension list or an extension's settings are invalid (stops start-up)."""


class Extension(abc.ABC):
    """One extension: a name such as `nexus.http`, the methods handlers may call, and `call`."""

    name: str
    methods: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build the extension from the host's settings; override to read your keys."""
        return cls()

    @abc.abstractmethod
    async def call(self, method: str, args: list[Any], panel_config: dict[str, Any]) -> Any:
        """Perform `method`; return a JSON-compatible value or raise ExtensionError."""

    async def start(self) -> None:
        """Acquire shared resources; called once on the event loop that will serve calls."""
        return None

    async def stop(self) -> None:
        """Release what `start` acquired; must be safe to call more than once."""
        return None


@dataclass(frozen=True)
class Denial:
    """What the denial hook receives; `context` is whatever the caller passed to `call`."""

    extension: str
    method: str
    reason: str
    panel_config: Mapping[str, Any]
    context: Any = None


DenialHook = Callable[[Denial], Awaitable[None] | None]


def load_extension_class(path: str) -> type[Extension]:
    module_path, _, attribute = path.rpartition(".")
    if not module_path or not attribute:
        raise ExtensionConfigError(f"Extension path {path!r} must be 'package.module.ClassName'")
    try:
        found = getattr(importlib.import_module(module_path), attribute)
    except (ImportError, AttributeError) as exc:
        raise ExtensionConfigError(f"Cannot load extension {path!r}: {exc}") from exc
    if not (inspect.isclass(found) and issubclass(found, Extension)):
        raise ExtensionConfigError(f"Extension {path!r} is not a subclass of runtime.extensions.Extension")
    return found


class ExtensionRegistry:
    """The process's extensions by name, with metrics and the denial hook around every call."""

    def __init__(self, extensions: Iterable[Extension] = (), *, on_denied: DenialHook | None = None) -> None:
        self._extensions: dict[str, Extension] = {}
        for extension in extensions:
            self._add(extension)
        self.on_denied = on_denied
        self._started: list[Extension] = []

    @classmethod
    def from_settings(
        cls,
        paths: Iterable[str],
        settings: Mapping[str, Any],
        *,
        on_denied: DenialHook | None = None,
    ) -> ExtensionRegistry:
        """Import each dotted class path and build it with `from_settings(settings)`."""
        extensions = []
        for path in paths:
            extension_class = load_extension_class(path)
            try:
                extensions.append(extension_class.from_settings(settings))
            except ExtensionConfigError:
                raise
            except (TypeError, ValueError) as exc:
                raise ExtensionConfigError(f"Extension {path!r}: {exc}") from exc
        return cls(extensions, on_denied=on_denied)

    def _add(self, extension: Extension) -> None:
        name = getattr(extension, "name", None)
        methods = getattr(extension, "methods", None)
        if not isinstance(name, str) or not name:
            raise ExtensionConfigError(f"{type(extension).__name__} has no name")
        if not isinstance(methods, frozenset) or not methods:
            raise ExtensionConfigError(f"Extension {name!r} must list its methods in a non-empty frozenset")
        if name in self._extensions:
            raise ExtensionConfigError(f"Extension {name!r} is registered twice")
        self._extensions[name] = extension

    def get(self, name: str) -> Extension | None:
        return self._extensions.get(name)

    def names(self) -> list[str]:
        return sorted(self._extensions)

    async def start(self) -> None:
        """Start every extension; if one fails, stop those already started and re-raise."""
        for extension in self._extensions.values():
            if extension in self._started:
                continue
            try:
                await extension.start()
            except Exception:
                await self.stop()
                raise
            self._started.append(extension)

    async def stop(self) -> None:
        """Stop started extensions in reverse order; a failing stop is logged, not raised."""
        while self._started:
            extension = self._started.pop()
            try:
                await extension.stop()
            except Exception:
                logger.exception("Extension %s failed to stop", extension.name)

    async def call(
        self,
        name: str,
        method: str,
        args: list[Any],
        panel_config: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
    ) -> Any:
        """Run `name.method(*args)` for a panel; raises ExtensionError with a handler-facing message."""
        extension = self._extensions.get(name)
        if extension is None:
            _count(UNKNOWN_LABEL, UNKNOWN_LABEL, STATUS_NOT_FOUND)
            raise ExtensionError(f"Extension {_shorten(name)!r} not found")
        if method not in extension.methods:
            _count(name, UNKNOWN_LABEL, STATUS_NOT_FOUND)
            available = ", ".join(sorted(extension.methods))
            raise ExtensionError(f"Extension {name!r} has no method {_shorten(method)!r} (available: {available})")
        if not isinstance(args, list | tuple):
            _count(name, method, STATUS_ERROR)
            raise ExtensionError(f"Arguments to {name}.{method} must be a list")
        config = dict(panel_config or {})
        try:
            value = await extension.call(method, list(args), config)
        except ExtensionDenied as exc:
            _count(name, method, STATUS_DENIED)
            logger.warning("Extension call %s.%s denied: %s", name, method, exc)
            await self._report_denial(Denial(name, method, str(exc), config, context))
            raise
        except ExtensionError:
            _count(name, method, STATUS_ERROR)
            raise
        except asyncio.CancelledError:
            _count(name, method, STATUS_CANCELLED)
            raise
        except Exception as exc:
            _count(name, method, STATUS_ERROR)
            logger.exception("Extension %s failed in %s", name, method)
            raise ExtensionError(f"Extension {name!r} failed in {method!r}: internal error") from exc
        _count(name, method, STATUS_SUCCESS)
        return value

    async def _report_denial(self, denial: Denial) -> None:
        if self.on_denied is None:
            return
        try:
            outcome = self.on_denied(denial)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.exception("Denial hook failed for %s.%s", denial.extension, denial.method)


def _count(extension: str, method: str, status: str) -> None:
    EXT_CALLS_TOTAL.labels(extension=extension, method=method, status=status).inc()


def _shorten(text: object, limit: int = 80) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"
