"""What the editor pages need besides the panel itself: the NXML schema for completion, the
starting sources, a preview of a source's view, and the differences between revisions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workspaces.nxml import schema
from workspaces.services import panels as panel_service
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ServiceError
from workspaces.services.values import matches_type

SAMPLES_DIR = Path(__file__).resolve().parent / "fixtures" / "panels"
DIFF_CONTEXT_LINES = 3

BLANK_SOURCE = """<NexusPanel id="my-panel" title="My panel">
  <Data>
    <State name="count" type="number" default="0" />
  </Data>
  <Logic>
    <Tool name="increment" description="Add one">
      <Handler>$state.count = $state.count + 1;</Handler>
    </Tool>
  </Logic>
  <View>
    <Layout strategy="stack" gap="md">
      <Metric label="Count" value="{$state.count}" />
      <Button label="Add one" trigger="increment" />
    </Layout>
  </View>
</NexusPanel>
"""

# Values the completion offers for attributes whose kind is not an enumeration.
_KIND_VALUES: dict[str, tuple[str, ...]] = {"bool": ("true", "false")}
_STRUCTURE_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("State", "type"): schema.STATE_TYPES,
    ("Arg", "type"): schema.STATE_TYPES,
    ("Arg", "required"): ("true", "false"),
    ("Lifecycle", "on"): schema.LIFECYCLE_EVENTS,
    ("Event", "broadcast"): ("true", "false"),
    ("Schedule", "enabled"): ("true", "false"),
    ("Schedule", "missed"): ("once", "skip"),
}


def _attribute(name: str, values: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "values": list(values)} if values else {"name": name}


def completion_schema() -> dict[str, Any]:
    """The NXML elements as @codemirror/lang-xml element specs: names, children, attributes, values."""
    elements: list[dict[str, Any]] = []
    for name, (attributes, _required, children) in schema.STRUCTURE.items():
        elements.append({
            "name": name,
            "top": name == "NexusPanel",
            "children": sorted(children),
            "attributes": [_attribute(attr, _STRUCTURE_VALUES.get((name, attr), ())) for attr in sorted(attributes)],
        })
    for name, component in schema.COMPONENTS.items():
        elements.append({
            "name": name,
            "children": sorted(schema.COMPONENTS) if component.container else [],
            "attributes": [
                _attribute(attr, spec.choices or _KIND_VALUES.get(spec.kind, ()))
                for attr, spec in sorted(component.attributes.items())
            ],
        })
    return {"elements": elements}


@dataclass(frozen=True)
class Sample:
    name: str
    source: str


def samples() -> list[Sample]:
    """The blank start and the sample panels shipped with Nexus (the ones the demo installs)."""
    shipped = [Sample(path.stem, path.read_text()) for path in sorted(SAMPLES_DIR.glob("*.nxml"))]
    return [Sample("blank", BLANK_SOURCE), *shipped]


def sample_source(name: str | None) -> str:
    return next((sample.source for sample in samples() if sample.name == name), BLANK_SOURCE)


PREVIEW_SANDBOX_ID = "editor-preview"


def preview(source: Any, workspace_slug: str, current_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The title, view tree and state a source would show: each key's default, or its current value
    when the panel has that key with a value of the declared type, and the <Computed> keys computed
    from those. ``errors`` when it is refused."""
    if not isinstance(source, str) or not source.strip():
        return {"valid": False, "errors": [], "message": "The source is empty."}
    try:
        definition = panel_service.parse_source(source)
    except ServiceError as exc:
        if exc.code != ErrorCode.INVALID_NXML:
            raise
        return {"valid": False, "errors": exc.details["errors"], "message": exc.message}
    state = definition.initial_state()
    for key, value in (current_state or {}).items():
        declared = definition.state(key)
        if key in state and declared is not None and matches_type(declared.type, value):
            state[key] = value
    sandbox = panel_service.sandbox_key(workspace_slug, PREVIEW_SANDBOX_ID)
    state.update(panel_service.compute(definition, state, sandbox))
    return {"valid": True, "errors": [], "title": definition.title, "view": definition.view_tree(), "state": state}


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "hunk", "add", "remove" or "same"
    text: str


def diff_lines(before: str, after: str) -> list[DiffLine]:
    """A unified diff of two sources, line by line, without its file header."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=DIFF_CONTEXT_LINES)
    result: list[DiffLine] = []
    for line in lines:
        if line.startswith(("---", "+++")) and not result:
            continue
        if line.startswith("@@"):
            result.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            result.append(DiffLine("add", line))
        elif line.startswith("-"):
            result.append(DiffLine("remove", line))
        else:
            result.append(DiffLine("same", line))
    return result
