"""Extension calls made on behalf of suspended handlers, and their audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from nexus import lifecycle
from runtime.extensions.registry import Denial, ExtensionDenied, ExtensionError, ExtensionRegistry
from workspaces.models import AuditOutcome, AuditRecord
from workspaces.nxml import PanelDefinition
from workspaces.services import quotas

if TYPE_CHECKING:
    from workspaces.services.panels import HandlerRun

logger = logging.getLogger(__name__)
HTTP_EXTENSION = "nexus.http"  # its calls count against WORKSPACE_HTTP_CALLS_PER_MINUTE

# httpx clients belong to one event loop: the server's loop keeps a started registry for the
# life of the process; any other loop (a command, a test) gets one for the call only.
_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExtensionRegistry] = weakref.WeakKeyDictionary()


def extension_settings() -> dict[str, Any]:
    config = settings.NEXUS
    return {
        "HTTP_MAX_CONCURRENT": config.HTTP_MAX_CONCURRENT,
        "HTTP_TIMEOUT": config.HTTP_TIMEOUT,
        "HTTP_ALLOWED_DOMAINS": ",".join(config.HTTP_ALLOWED_DOMAINS),
        "HTTP_ALLOWED_PRIVATE_HOSTS": ",".join(config.HTTP_ALLOWED_PRIVATE_HOSTS),
        "HTTP_MAX_BODY_BYTES": config.HTTP_MAX_BODY_BYTES,
        "HTTP_MAX_REDIRECTS": config.HTTP_MAX_REDIRECTS,
    }


def build_registry() -> ExtensionRegistry:
    return ExtensionRegistry.from_settings(
        settings.NEXUS.NEXUS_EXTENSIONS, extension_settings(), on_denied=_record_denial
    )


@contextlib.asynccontextmanager
async def registry_for_call() -> AsyncIterator[ExtensionRegistry]:
    loop = asyncio.get_running_loop()
    if lifecycle.is_server_loop(loop):
        registry = _registries.get(loop)
        if registry is None:
            registry = build_registry()
            await registry.start()
            _registries[loop] = registry
        yield registry
        return
    registry = build_registry()
    await registry.start()
    try:
        yield registry
    finally:
        await registry.stop()


def methods_for(definition: PanelDefinition) -> dict[str, list[str]]:
    """alias -> callable methods, for the extensions the panel declares and this process has."""
    registry = build_registry_cached()
    methods: dict[str, list[str]] = {}
    for declared in definition.extensions:
        extension = registry.get(declared.name)
        if extension is not None:
            methods[declared.alias] = sorted(extension.methods)
    return methods


_method_catalogue: ExtensionRegistry | None = None


def build_registry_cached() -> ExtensionRegistry:
    """A registry used only to read names and methods (never started, never called)."""
    global _method_catalogue
    if _method_catalogue is None:
        _method_catalogue = build_registry()
    return _method_catalogue


async def perform(run: HandlerRun, suspension: dict[str, Any]) -> dict[str, Any]:
    """Carry out the call a handler is waiting on; the answer is how to resume it."""
    resume: dict[str, Any] = {"suspension_id": suspension.get("suspension_id"), "ok": False}
    alias = str(suspension.get("extension", ""))
    method = str(suspension.get("method", ""))
    declared = next((ext for ext in run.definition.extensions if ext.alias == alias), None)
    if declared is None:
        resume["error"] = f"Extension '{alias}' not found"
        return resume
    if declared.name == HTTP_EXTENSION:
        refusal = await quotas.charge_http_call(run.workspace_slug)
        if refusal is not None:  # the handler's await throws an Error whose code says why
            resume["error"], resume["error_code"] = refusal.message, refusal.code
            await _audit(run, f"{declared.name}.{method}", _describe_target(suspension), AuditOutcome.DENIED,
                         refusal.message)
            return resume
    panel_config = await _panel_config(run.panel_pk, alias)
    try:
        async with registry_for_call() as registry:
            resume["value"] = await registry.call(
                declared.name, method, list(suspension.get("args") or []), panel_config, context=run
            )
        resume["ok"] = True
        outcome = AuditOutcome.ALLOWED
        reason = ""
    except ExtensionDenied as exc:
        resume["error"] = str(exc)  # the registry's denial hook writes the audit record
        return resume
    except ExtensionError as exc:
        resume["error"] = str(exc)
        outcome = AuditOutcome.FAILED
        reason = str(exc)
    await _audit(run, f"{declared.name}.{method}", _describe_target(suspension), outcome, reason)
    return resume


def _describe_target(suspension: dict[str, Any]) -> str:
    args = suspension.get("args") or []
    first = args[0] if args else ""
    if isinstance(first, dict):
        first = first.get("url", "")
    return str(first)[:255]


@database_sync_to_async
def _panel_config(panel_pk: int, alias: str) -> dict[str, Any]:
    from workspaces.models import Panel

    config = Panel.objects.filter(pk=panel_pk).values_list("extension_config", flat=True).first() or {}
    value = config.get(alias) if isinstance(config, dict) else None
    return dict(value) if isinstance(value, dict) else {}


@database_sync_to_async
def _audit(run: HandlerRun, action: str, resource: str, outcome: str, reason: str) -> None:
    AuditRecord.record(
        workspace=run.workspace_slug, panel=run.panel_id, handler=run.handler_name,
        user=run.actor, action=action, resource=resource, outcome=outcome, reason=reason,
    )


async def _record_denial(denial: Denial) -> None:
    run = denial.context
    if run is None:
        return
    await _audit(run, f"{denial.extension}.{denial.method}", "", AuditOutcome.DENIED, denial.reason)
