"""Parsed panel definitions: parsing NXML sources and a cache of parsed trees by digest."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from cachetools import LRUCache
from django.conf import settings

from workspaces.models import Panel
from workspaces.nxml import NXMLValidationError, PanelDefinition, parse_nxml
from workspaces.services.errors import ErrorCode
from workspaces.services.panels.errors import ServiceError
from workspaces.services.panels.workers import in_worker
from workspaces.services.sandbox import check_syntax

# Only what a segment needs: the big source and parsed tree stay in the database.
HOT_FIELDS = ("id", "panel_id", "status", "state", "state_version", "definition_hash", "workspace__slug")
MAX_CACHED_DEFINITIONS = 512
_definitions: LRUCache[str, PanelDefinition] = LRUCache(maxsize=MAX_CACHED_DEFINITIONS)
_definitions_guard = threading.Lock()  # an LRUCache reorders itself on every read


def _cached(digest: str) -> PanelDefinition | None:
    if not digest:
        return None
    with _definitions_guard:
        return _definitions.get(digest)


def definition_digest(tree: dict[str, Any]) -> str:
    """The digest a parsed tree is cached and compared by."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def definition_of(panel: Panel) -> PanelDefinition:
    """The parsed tree of a panel, cached by its digest (loaded from the row only on a miss)."""
    digest = panel.definition_hash
    cached = _cached(digest)
    if cached is not None:
        return cached
    tree = panel.definition if "definition" in panel.__dict__ else Panel.objects.values_list(
        "definition", flat=True).get(pk=panel.pk)
    definition = PanelDefinition.from_dict(tree)
    with _definitions_guard:
        _definitions[digest or definition_digest(tree)] = definition
    return definition


async def adefinition_of(panel: Panel) -> PanelDefinition:
    """definition_of for async callers: a cache miss reads the database in a worker thread."""
    cached = _cached(panel.definition_hash)
    return cached if cached is not None else await in_worker(definition_of)(panel)


def hot_panels() -> Any:
    """Panels with only the fields a run needs (and their workspace), for lookups on the hot path."""
    return Panel.objects.select_related("workspace").only(*HOT_FIELDS)


def parse_source(source: str) -> PanelDefinition:
    """The definition of an NXML source; refuses an invalid one with INVALID_NXML and every error found."""
    try:
        return parse_nxml(source, syntax_checker=check_syntax,
                          min_schedule_interval_s=settings.NEXUS.SCHEDULE_MIN_INTERVAL)
    except NXMLValidationError as exc:
        raise ServiceError(
            ErrorCode.INVALID_NXML,
            f"NXML has {len(exc.errors)} error(s)",
            {"errors": [error.to_dict() for error in exc.errors]},
        ) from None


def validate_source(source: str) -> list[dict[str, Any]]:
    """The errors an NXML source has (empty when it is valid)."""
    try:
        parse_source(source)
    except ServiceError as exc:
        return list(exc.details["errors"])
    return []
