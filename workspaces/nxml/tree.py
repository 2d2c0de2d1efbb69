"""The typed tree of a parsed panel, and its JSON forms.

``PanelDefinition.to_dict()`` is what gets stored; ``from_dict`` reads it back
without reparsing. ``view_tree()`` is what the browser renders.
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass, field
from typing import Any

from runtime.capabilities import infer_capabilities

from .schema import IDENTIFIER, JSON_SCHEMA_TYPES

FORMAT_VERSION = 1


@dataclass(slots=True)
class Handler:
    """Handler JavaScript exactly as written between the tags.

    ``line``/``column`` locate the code's first character in the NXML source.
    ``positions`` remembers where each piece of text started (offset in ``code``,
    line, column), so locations survive entities and CDATA sections.
    """

    code: str
    line: int
    column: int
    positions: list[tuple[int, int, int]] = field(default_factory=list, repr=False, compare=False)

    def nxml_position(self, line: int, column: int) -> tuple[int, int]:
        """Map a 1-based (line, column) inside ``code`` to the NXML source."""
        offset = _code_offset(self.code, line, column)
        anchors = self.positions or [(0, self.line, self.column)]
        index = max(bisect.bisect_right([anchor[0] for anchor in anchors], offset) - 1, 0)
        start, nxml_line, nxml_column = anchors[index]
        for char in self.code[start:offset]:
            if char == "\n":
                nxml_line, nxml_column = nxml_line + 1, 1
            else:
                nxml_column += 1
        return nxml_line, nxml_column

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "line": self.line,
            "column": self.column,
            "positions": [list(anchor) for anchor in self.positions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handler:
        positions = [(int(a[0]), int(a[1]), int(a[2])) for a in data.get("positions") or []]
        return cls(str(data.get("code", "")), int(data.get("line", 1)), int(data.get("column", 1)), positions)


def _code_offset(code: str, line: int, column: int) -> int:
    offset = 0
    for _ in range(max(line, 1) - 1):
        newline = code.find("\n", offset)
        if newline < 0:
            return len(code)
        offset = newline + 1
    end_of_line = code.find("\n", offset)
    end_of_line = len(code) if end_of_line < 0 else end_of_line
    return min(offset + max(column, 1) - 1, end_of_line)


@dataclass(slots=True)
class StateDef:
    name: str
    type: str
    default: Any
    description: str = ""


@dataclass(slots=True)
class ComputedDef:
    name: str
    expression: str
    references: list[str] = field(default_factory=list)  # state or computed keys it reads


@dataclass(slots=True)
class ArgDef:
    name: str
    type: str
    required: bool = False
    default: Any = None  # None: no default
    description: str = ""

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": JSON_SCHEMA_TYPES[self.type]}
        if self.default is not None:
            schema["default"] = copy.deepcopy(self.default)
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(slots=True)
class ToolDef:
    name: str
    handler: Handler
    description: str = ""
    args: list[ArgDef] = field(default_factory=list)
    # Declared tokens when a <Capabilities> block exists, otherwise inferred from the handler.
    capabilities: list[str] = field(default_factory=list)
    capabilities_declared: bool = False

    def args_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {arg.name: arg.json_schema() for arg in self.args},
            "required": [arg.name for arg in self.args if arg.required],
            "additionalProperties": False,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "args": [_plain(arg) for arg in self.args],
            "capabilities": list(self.capabilities),
            "capabilities_declared": self.capabilities_declared,
            "handler": self.handler.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolDef:
        return cls(
            name=data["name"],
            handler=Handler.from_dict(data["handler"]),
            description=data.get("description", ""),
            args=[ArgDef(**arg) for arg in data.get("args", [])],
            capabilities=list(data.get("capabilities", [])),
            capabilities_declared=bool(data.get("capabilities_declared", False)),
        )


@dataclass(slots=True)
class ExtensionDef:
    name: str
    alias: str


@dataclass(slots=True)
class EventDef:
    """A declared event; a broadcast one reaches every viewer, others only the requester."""

    name: str
    broadcast: bool = False
    description: str = ""


@dataclass(slots=True)
class ScheduleDef:
    """A tool run on its own: every ``interval`` seconds, or on a five-field ``cron`` expression."""

    name: str
    tool: str
    every: str = ""  # as written, e.g. "5m"; empty for a cron schedule
    interval: int | None = None  # seconds of ``every``
    cron: str = ""
    timezone: str = "UTC"
    args: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    missed: str = "once"  # after an outage: "once" runs one catch-up, "skip" none

    @property
    def expression(self) -> str:
        return f"every {self.every}" if self.interval is not None else self.cron


@dataclass(slots=True)
class ViewNode:
    """One component: props keep the raw attribute strings (the browser evaluates ``{…}``)."""

    type: str
    props: dict[str, str] = field(default_factory=dict)
    children: list[ViewNode] = field(default_factory=list)
    line: int = 0
    column: int = 0

    def render(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "props": dict(self.props),
            "children": [child.render() for child in self.children],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "props": dict(self.props),
            "children": [child.to_dict() for child in self.children],
            "line": self.line,
            "column": self.column,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewNode:
        return cls(
            type=data["type"],
            props=dict(data.get("props", {})),
            children=[cls.from_dict(child) for child in data.get("children", [])],
            line=int(data.get("line", 0)),
            column=int(data.get("column", 0)),
        )

    def walk(self) -> list[ViewNode]:
        nodes, stack = [], [self]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(reversed(node.children))
        return nodes


@dataclass(slots=True)
class PanelDefinition:
    id: str
    title: str
    version: str = "1.0.0"
    states: list[StateDef] = field(default_factory=list)
    computed: list[ComputedDef] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    lifecycle: dict[str, Handler] = field(default_factory=dict)
    extensions: list[ExtensionDef] = field(default_factory=list)
    view: list[ViewNode] = field(default_factory=list)
    events: list[EventDef] = field(default_factory=list)
    schedules: list[ScheduleDef] = field(default_factory=list)

    # -- lookups
    def tool(self, name: str) -> ToolDef | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def state(self, name: str) -> StateDef | None:
        return next((state for state in self.states if state.name == name), None)

    def initial_state(self) -> dict[str, Any]:
        """Each state key's default (fresh copies; computed keys are not included)."""
        return {state.name: copy.deepcopy(state.default) for state in self.states}

    def tool_capabilities(self, name: str) -> list[str]:
        """Tokens for a tool (declared or inferred); a name that is no tool but a lifecycle
        event (``mount``/``unmount``) gives that hook's inferred tokens. KeyError otherwise."""
        tool = self.tool(name)
        if tool is not None:
            return list(tool.capabilities)
        return self.lifecycle_capabilities(name)

    def lifecycle_capabilities(self, on: str) -> list[str]:
        if on not in self.lifecycle:
            raise KeyError(f"panel {self.id!r} has no tool or lifecycle handler named {on!r}")
        return infer_capabilities(self.lifecycle[on].code)

    def extension_aliases(self) -> dict[str, str]:
        """alias -> extension name."""
        return {extension.alias: extension.name for extension in self.extensions}

    def broadcast_events(self) -> frozenset[str]:
        """Names of the events declared ``broadcast="true"``."""
        return frozenset(event.name for event in self.events if event.broadcast)

    def computed_order(self) -> list[str]:
        """Computed keys in an order where each comes after the computed keys it reads."""
        pending = {item.name: item for item in self.computed}
        ordered: list[str] = []
        while pending:
            ready = [
                name
                for name, item in pending.items()
                if not any(ref in pending and ref != name for ref in item.references)
            ]
            if not ready:  # a cycle; the validator refuses these, keep declaration order
                ready = list(pending)
            for name in ready:
                ordered.append(name)
                del pending[name]
        return ordered

    def bound_keys(self) -> dict[str, str]:
        """State keys that an Input, Switch or Checkbox writes to, with their declared types."""
        types = {state.name: state.type for state in self.states}
        bound: dict[str, str] = {}
        for node in self._nodes():
            if node.type in ("Input", "Switch", "Checkbox"):
                key = bind_key(node.props.get("bind", ""))
                if key is not None and key in types:
                    bound[key] = types[key]
        return bound

    def _nodes(self) -> list[ViewNode]:
        return [node for root in self.view for node in root.walk()]

    # -- JSON forms
    def view_tree(self) -> dict[str, Any]:
        """The component tree for the browser, under a root node of type ``View``."""
        return {"type": "View", "props": {}, "children": [node.render() for node in self.view]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "title": self.title,
            "version": self.version,
            "states": [_plain(state) for state in self.states],
            "computed": [_plain(item) for item in self.computed],
            "tools": [tool.to_dict() for tool in self.tools],
            "lifecycle": {on: handler.to_dict() for on, handler in self.lifecycle.items()},
            "extensions": [_plain(extension) for extension in self.extensions],
            "view": [node.to_dict() for node in self.view],
            "events": [_plain(event) for event in self.events],
            "schedules": [_plain(schedule) for schedule in self.schedules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PanelDefinition:
        return cls(
            id=data.get("id", ""),
            title=data.get("title", ""),
            version=data.get("version", "1.0.0"),
            states=[StateDef(**state) for state in data.get("states", [])],
            computed=[ComputedDef(**item) for item in data.get("computed", [])],
            tools=[ToolDef.from_dict(tool) for tool in data.get("tools", [])],
            lifecycle={on: Handler.from_dict(h) for on, h in data.get("lifecycle", {}).items()},
            extensions=[ExtensionDef(**extension) for extension in data.get("extensions", [])],
            view=[ViewNode.from_dict(node) for node in data.get("view", [])],
            events=[EventDef(**event) for event in data.get("events", [])],
            schedules=[ScheduleDef(**schedule) for schedule in data.get("schedules", [])],
        )


def bind_key(value: str) -> str | None:
    """The key of a ``bind`` value: ``$state.key`` or ``{$state.key}``; None for anything else."""
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    prefix = "$state."
    if not text.startswith(prefix):
        return None
    key = text[len(prefix) :]
    return key if IDENTIFIER.match(key) else None


def _plain(item: Any) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(item, name)) for name in item.__dataclass_fields__}
