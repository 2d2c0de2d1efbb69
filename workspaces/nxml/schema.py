"""What NXML allows: elements, their attributes, value kinds and enumerations."""

from __future__ import annotations

import re
from dataclasses import dataclass

STATE_TYPES = ("string", "number", "boolean", "list", "object")
JSON_SCHEMA_TYPES = {
    "string": "string",
    "number": "number",
    "boolean": "boolean",
    "list": "array",
    "object": "object",
}
EMPTY_DEFAULTS: dict[str, object] = {"string": "", "number": 0, "boolean": False, "list": [], "object": {}}
LIFECYCLE_EVENTS = ("mount", "unmount", "update")

IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
TOOL_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
PANEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
COMPONENT_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
EVENT_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.:-]*$")
EXTENSION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z0-9_]+)*$")
MAX_NAME_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Attr:
    """How one attribute's value is checked.

    kinds: ``text`` (literal or template), ``enum`` (one of ``choices`` or a binding),
    ``bool``/``number`` (literal or binding), ``binding`` (must be ``{…}``),
    ``trigger`` (a tool name), ``bind`` (``$state.key``), ``identifier``,
    ``property`` (a property name), ``id`` (a component id).
    """

    kind: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Component:
    attributes: dict[str, Attr]
    container: bool = False
    # A component whose body text stands for this attribute (``<Text>Hi {$state.n}</Text>``).
    text_attribute: str | None = None


_ID = Attr("id")
_DISABLED = Attr("bool")
_BUTTON_VARIANTS = ("primary", "secondary", "danger", "ghost")
_ALIGN = ("start", "center", "end", "stretch", "baseline", "flex-start", "flex-end")
_JUSTIFY = (
    "start", "center", "end", "between", "around", "evenly", "stretch",
    "flex-start", "flex-end", "space-between", "space-around", "space-evenly",
)  # fmt: skip


def _component(container: bool = False, text_attribute: str | None = None, **attributes: Attr) -> Component:
    return Component({"id": _ID, **attributes}, container=container, text_attribute=text_attribute)


COMPONENTS: dict[str, Component] = {
    "Layout": _component(
        container=True,
        strategy=Attr("enum", choices=("auto", "stack", "row")),
        gap=Attr("enum", choices=("sm", "md", "lg")),
        align=Attr("enum", choices=_ALIGN),
        justify=Attr("enum", choices=_JUSTIFY),
    ),
    "Container": _component(
        container=True,
        title=Attr(),
        variant=Attr("enum", choices=("card", "panel", "section", "transparent")),
    ),
    "If": _component(container=True, condition=Attr("condition", required=True)),
    "Iterate": Component(
        {
            "id": _ID,
            "items": Attr("binding", required=True),
            "as": Attr("identifier", required=True),
            "key": Attr("property"),
        },
        container=True,
    ),
    "Text": _component(
        text_attribute="content",
        content=Attr(),
        variant=Attr("enum", choices=("h1", "h2", "h3", "h4", "body", "code", "caption")),
    ),
    "Metric": _component(label=Attr(), value=Attr(required=True), unit=Attr(), trend=Attr()),
    "StatusBadge": _component(
        label=Attr(required=True), status=Attr("enum", choices=("success", "warn", "error", "info"))
    ),
    "LogStream": _component(data=Attr("binding", required=True), height=Attr("number"), autoScroll=Attr("bool")),
    "Chart": _component(
        type=Attr("enum", choices=("line", "bar", "pie", "area")),
        data=Attr("binding", required=True),
        xKey=Attr("property"),
        yKey=Attr("property"),
        height=Attr("number"),
        unit=Attr(),
    ),
    "Input": _component(
        bind=Attr("bind", required=True),
        placeholder=Attr(),
        inputType=Attr("enum", choices=("text", "number", "password", "email")),
        disabled=_DISABLED,
        trigger=Attr("trigger"),
        args=Attr("binding"),
    ),
    "Switch": _component(bind=Attr("bind", required=True), label=Attr(), disabled=_DISABLED),
    "Checkbox": _component(
        label=Attr(),
        checked=Attr("bool"),
        bind=Attr("bind"),
        trigger=Attr("trigger"),
        args=Attr("binding"),
        disabled=_DISABLED,
    ),
    "Button": _component(
        label=Attr(required=True),
        trigger=Attr("trigger"),
        variant=Attr("enum", choices=_BUTTON_VARIANTS),
        args=Attr("binding"),
        disabled=_DISABLED,
    ),
    "Action": _component(
        label=Attr(required=True),
        trigger=Attr("trigger", required=True),
        variant=Attr("enum", choices=_BUTTON_VARIANTS),
        args=Attr("binding"),
        disabled=_DISABLED,
    ),
}

# Non-view elements: allowed attributes, required ones, allowed children.
STRUCTURE: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "NexusPanel": (
        frozenset({"id", "title", "version"}),
        frozenset({"title"}),
        frozenset({"Data", "Logic", "View"}),
    ),
    "Data": (frozenset(), frozenset(), frozenset({"State", "Computed"})),
    "State": (
        frozenset({"name", "type", "default", "description"}),
        frozenset({"name", "type"}),
        frozenset(),
    ),
    "Computed": (frozenset({"name", "value", "description"}), frozenset({"name", "value"}), frozenset()),
    "Logic": (frozenset(), frozenset(), frozenset({"Extension", "Event", "Tool", "Lifecycle", "Schedule"})),
    "Schedule": (
        frozenset({"name", "tool", "every", "cron", "timezone", "args", "enabled", "missed"}),
        frozenset({"tool"}),
        frozenset(),
    ),
    "Event": (frozenset({"name", "broadcast", "description"}), frozenset({"name"}), frozenset()),
    "Extension": (frozenset({"name", "alias"}), frozenset({"name"}), frozenset()),
    "Tool": (
        frozenset({"name", "description"}),
        frozenset({"name"}),
        frozenset({"Arg", "Capabilities", "Handler"}),
    ),
    "Arg": (
        frozenset({"name", "type", "required", "default", "description"}),
        frozenset({"name", "type"}),
        frozenset(),
    ),
    "Capabilities": (frozenset(), frozenset(), frozenset({"Capability"})),
    "Capability": (frozenset({"type", "scope"}), frozenset({"type"}), frozenset()),
    "Lifecycle": (frozenset({"on"}), frozenset({"on"}), frozenset({"Handler"})),
    "Handler": (frozenset(), frozenset(), frozenset()),
    "View": (frozenset(), frozenset(), frozenset(COMPONENTS)),
}

KNOWN_ELEMENTS = frozenset(STRUCTURE) | frozenset(COMPONENTS)
