"""Turning a raw element tree into a PanelDefinition while collecting every error."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Iterable
from typing import Any

from runtime.capabilities import capability_from_declaration, infer_capabilities, parse_capability

from . import errors as codes
from .bindings import (
    Expression,
    ExpressionError,
    has_expressions,
    is_binding,
    iter_expressions,
    parse_expression,
)
from .computed import check_expression as check_computed_expression
from .errors import NXMLError
from .javascript import CheckTooExpensive, SyntaxChecker, find_syntax_error
from .schedules import DEFAULT_MIN_INTERVAL_S, ScheduleBuilder
from .schema import (
    COMPONENT_ID,
    COMPONENTS,
    EMPTY_DEFAULTS,
    EVENT_NAME,
    EXTENSION_NAME,
    IDENTIFIER,
    KNOWN_ELEMENTS,
    LIFECYCLE_EVENTS,
    MAX_NAME_LENGTH,
    PANEL_ID,
    STATE_TYPES,
    STRUCTURE,
    TOOL_NAME,
    Attr,
)
from .tree import (
    ArgDef,
    ComputedDef,
    EventDef,
    ExtensionDef,
    Handler,
    PanelDefinition,
    StateDef,
    ToolDef,
    ViewNode,
    bind_key,
)
from .xmlreader import RawElement, SourceMap, value_position

_NUMBER = re.compile(r"^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_BOOLEANS = {"true": True, "false": False}
MAX_ERRORS = 500
MAX_ERRORS_PER_VALUE = 10
# Time the syntax checks of one document may take together; the handlers after it go unchecked.
CHECK_BUDGET_S = 2.0
_BIND_TYPES = {"Input": ("string", "number"), "Switch": ("boolean",), "Checkbox": ("boolean",)}


def coerce_default(type_: str, raw: str) -> Any:
    """The value of a ``default`` attribute for a state or arg type; ValueError when it does not fit."""
    if type_ == "string":
        return raw
    text = raw.strip()
    if type_ == "number":
        if not _NUMBER.match(text):
            raise ValueError(f"{raw!r} is not a number")
        if re.fullmatch(r"-?\d+", text) and len(text) <= 16:
            return int(text)
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{raw!r} is out of range")
        return value
    if type_ == "boolean":
        if text not in _BOOLEANS:
            raise ValueError(f"{raw!r} is not true or false")
        return _BOOLEANS[text]
    expected = list if type_ == "list" else dict
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{raw[:60]!r} is not JSON: {exc}") from None
    if not isinstance(value, expected):
        raise ValueError(f"{raw[:60]!r} is not a JSON {'array' if type_ == 'list' else 'object'}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


class Validator:
    def __init__(self, root: RawElement, source: SourceMap, checker: SyntaxChecker | None,
                 min_schedule_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
        self.root = root
        self.source = source
        self.checker = checker
        self.min_schedule_interval_s = min_schedule_interval_s
        self.errors: list[NXMLError] = []
        self.state_types: dict[str, str] = {}
        self.computed_names: set[str] = set()
        self.tool_names: set[str] = set()
        self.aliases: set[str] = set()
        self.component_ids: dict[str, RawElement] = {}
        self.check_seconds = 0.0

    # ------------------------------------------------------------------ reporting
    def report(self, code: str, message: str, at: tuple[int, int]) -> None:
        if len(self.errors) > MAX_ERRORS:
            return
        if len(self.errors) == MAX_ERRORS:
            code, message = codes.TOO_MANY_ERRORS, f"more than {MAX_ERRORS} errors; the rest are not listed"
        self.errors.append(NXMLError(code, message, max(at[0], 1), max(at[1], 1)))

    def at_element(self, element: RawElement) -> tuple[int, int]:
        return element.line, element.column

    def at_attribute(self, element: RawElement, name: str) -> tuple[int, int]:
        return element.attribute_position(name)

    def at_value(self, element: RawElement, name: str, index: int = 0) -> tuple[int, int]:
        position = value_position(self.source, element.spans.get(name), index)
        return position if position is not None else element.attribute_position(name)

    # ------------------------------------------------------------------ generic checks
    def check_element(self, element: RawElement, *, text_allowed: bool = False) -> list[RawElement]:
        """Attributes, required attributes, children and text of a structural element."""
        allowed, required, children = STRUCTURE[element.tag]
        self.check_attributes(element, allowed, required)
        if not text_allowed:
            self.check_no_text(element)
        accepted = []
        for child in element.children:
            if child.tag in children:
                accepted.append(child)
            else:
                self.report_stray(child, f"<{element.tag}>")
        return accepted

    def check_attributes(self, element: RawElement, allowed: Iterable[str], required: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for name in element.attributes:
            if name not in allowed_set:
                expected = ", ".join(sorted(allowed_set)) or "none"
                self.report(
                    codes.UNKNOWN_ATTRIBUTE,
                    f"<{element.tag}> has no attribute {name!r} (allowed: {expected})",
                    self.at_attribute(element, name),
                )
        for name in required:
            if name not in element.attributes:
                self.report(
                    codes.MISSING_ATTRIBUTE,
                    f"<{element.tag}> needs a {name!r} attribute",
                    self.at_element(element),
                )

    def check_no_text(self, element: RawElement) -> None:
        for chunk in element.chunks:
            if chunk.text.strip():
                offset = len(chunk.text) - len(chunk.text.lstrip())
                self.report(
                    codes.UNEXPECTED_TEXT,
                    f"<{element.tag}> takes no text; found {chunk.text.strip()[:30]!r}",
                    (chunk.line, chunk.column + offset),
                )
                return

    def report_stray(self, child: RawElement, where: str) -> None:
        if child.tag in KNOWN_ELEMENTS:
            self.report(
                codes.MISPLACED_ELEMENT,
                f"<{child.tag}> is not allowed inside {where}",
                self.at_element(child),
            )
        else:
            self.report(codes.UNKNOWN_ELEMENT, f"unknown element <{child.tag}> inside {where}", self.at_element(child))

    def single(self, elements: list[RawElement], tag: str, where: str) -> RawElement | None:
        matching = [element for element in elements if element.tag == tag]
        for extra in matching[1:]:
            self.report(codes.DUPLICATE_ELEMENT, f"{where} may have only one <{tag}>", self.at_element(extra))
        return matching[0] if matching else None

    def check_name(
        self, element: RawElement, what: str, seen: dict[str, Any], pattern: re.Pattern[str] = IDENTIFIER
    ) -> str | None:
        """The element's ``name``, when present, well formed and not taken yet."""
        name = element.attributes.get("name")
        if name is None:
            return None
        if not pattern.match(name) or len(name) > MAX_NAME_LENGTH:
            self.report(
                codes.INVALID_NAME,
                f"{what} name {name!r} is not a valid identifier",
                self.at_value(element, "name"),
            )
            return None
        if name in seen:
            self.report(codes.DUPLICATE_NAME, f"{what} name {name!r} is already used", self.at_value(element, "name"))
            return None
        seen[name] = element
        return name

    def check_type(self, element: RawElement, what: str) -> str | None:
        type_ = element.attributes.get("type")
        if type_ is None:
            return None
        if type_ not in STATE_TYPES:
            self.report(
                codes.INVALID_TYPE,
                f"{what} type {type_!r} is not one of {', '.join(STATE_TYPES)}",
                self.at_value(element, "type"),
            )
            return None
        return type_

    def check_default(self, element: RawElement, type_: str | None, what: str) -> tuple[bool, Any]:
        raw = element.attributes.get("default")
        if raw is None or type_ is None:
            return False, None
        try:
            return True, coerce_default(type_, raw)
        except ValueError as exc:
            self.report(
                codes.INVALID_DEFAULT,
                f"default of {what} does not fit type {type_}: {exc}",
                self.at_value(element, "default"),
            )
            return False, None

    # ------------------------------------------------------------------ document
    def build(self) -> PanelDefinition:
        root = self.root
        if root.tag != "NexusPanel":
            self.report(
                codes.UNKNOWN_ELEMENT,
                f"the root element must be <NexusPanel>, not <{root.tag}>",
                self.at_element(root),
            )
            return PanelDefinition(id="", title="")
        sections = self.check_element(root)
        panel_id = root.attributes.get("id", "")
        if "id" in root.attributes and not PANEL_ID.match(panel_id):
            self.report(
                codes.INVALID_VALUE,
                f"panel id {panel_id!r}: use 1-64 letters, digits, '-' or '_', not starting with '-' or '_'",
                self.at_value(root, "id"),
            )
        title = root.attributes.get("title", "")
        if "title" in root.attributes and not title.strip():
            self.report(codes.INVALID_VALUE, "panel title is empty", self.at_value(root, "title"))
        definition = PanelDefinition(id=panel_id, title=title, version=root.attributes.get("version", "1.0.0"))
        data = self.single(sections, "Data", "<NexusPanel>")
        logic = self.single(sections, "Logic", "<NexusPanel>")
        view = self.single(sections, "View", "<NexusPanel>")
        computed_elements: list[tuple[ComputedDef, RawElement]] = []
        if data is not None:
            computed_elements = self.build_data(data, definition)
        if logic is not None:
            self.build_logic(logic, definition)
        for computed, element in computed_elements:
            self.check_computed(computed, element)
        self.check_computed_cycles(computed_elements)
        if view is not None:
            definition.view = self.build_view(view)
        return definition

    # ------------------------------------------------------------------ <Data>
    def build_data(self, data: RawElement, definition: PanelDefinition) -> list[tuple[ComputedDef, RawElement]]:
        names: dict[str, Any] = {}
        computed: list[tuple[ComputedDef, RawElement]] = []
        for element in self.check_element(data):
            self.check_element(element)
            if element.tag == "State":
                name = self.check_name(element, "state", names)
                type_ = self.check_type(element, "state")
                has_default, default = self.check_default(
                    element, type_, f"state {element.attributes.get('name', '?')}"
                )
                if name is not None:
                    # Known even when its type is wrong, so that later checks do not cascade.
                    self.state_types[name] = type_ or ""
                if name is not None and type_ is not None:
                    value = default if has_default else EMPTY_DEFAULTS[type_]
                    description = element.attributes.get("description", "")
                    definition.states.append(StateDef(name, type_, _copy(value), description))
            else:
                name = self.check_name(element, "computed", names)
                if name is not None:
                    self.computed_names.add(name)
                if name is not None and "value" in element.attributes:
                    item = ComputedDef(name, element.attributes["value"])
                    definition.computed.append(item)
                    computed.append((item, element))
        return computed

    def check_computed(self, computed: ComputedDef, element: RawElement) -> None:
        check = check_computed_expression(computed.expression)
        for problem in check.problems:
            self.report(problem.code, f"'value' of <Computed>: {problem.message}",
                        self.at_value(element, "value", problem.offset))
        if check.problems:
            return
        for key in check.references:
            if key not in self.state_types and key not in self.computed_names:
                self.report(codes.UNKNOWN_STATE_KEY, f"'value' of <Computed>: $state.{key} is no state or computed key",
                            self.at_value(element, "value", max(computed.expression.find(key), 0)))
        computed.references = sorted(check.references)

    def check_computed_cycles(self, computed: list[tuple[ComputedDef, RawElement]]) -> None:
        graph = {item.name: [ref for ref in item.references if ref in self.computed_names] for item, _ in computed}
        elements = {item.name: element for item, element in computed}
        for name in graph:
            if self._reaches(graph, name, name):
                self.report(
                    codes.COMPUTED_CYCLE,
                    f"computed {name!r} depends on itself through other computed keys",
                    self.at_value(elements[name], "value"),
                )

    @staticmethod
    def _reaches(graph: dict[str, list[str]], start: str, target: str) -> bool:
        seen: set[str] = set()
        stack = list(graph.get(start, []))
        while stack:
            node = stack.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, []))
        return False

    # ------------------------------------------------------------------ <Logic>
    def build_logic(self, logic: RawElement, definition: PanelDefinition) -> None:
        children = self.check_element(logic)
        for element in children:
            if element.tag == "Extension":
                self.build_extension(element, definition)
        tools: dict[str, Any] = {}
        for element in children:
            if element.tag == "Tool" and "name" in element.attributes:
                if self.check_name(element, "tool", tools, TOOL_NAME) is not None:
                    self.tool_names.add(element.attributes["name"])
        for element in children:
            if element.tag == "Tool":
                tool = self.build_tool(element)
                if tool is not None and tool.name in self.tool_names and definition.tool(tool.name) is None:
                    definition.tools.append(tool)
            elif element.tag == "Lifecycle":
                self.build_lifecycle(element, definition)
        events: dict[str, Any] = {}
        for element in children:
            if element.tag == "Event":
                self.build_event(element, events, definition)
        scheduled = [element for element in children if element.tag == "Schedule"]
        definition.schedules = ScheduleBuilder(self, definition, self.min_schedule_interval_s).build(scheduled)

    def build_event(self, element: RawElement, seen: dict[str, Any], definition: PanelDefinition) -> None:
        self.check_element(element)
        name = self.check_name(element, "event", seen, EVENT_NAME)
        broadcast = self.check_boolean_literal(element, "broadcast")
        if name is not None:
            definition.events.append(EventDef(name, bool(broadcast), element.attributes.get("description", "")))

    def build_extension(self, element: RawElement, definition: PanelDefinition) -> None:
        self.check_element(element)
        name = element.attributes.get("name")
        if name is None:
            return
        if not EXTENSION_NAME.match(name) or len(name) > MAX_NAME_LENGTH:
            self.report(codes.INVALID_VALUE, f"extension name {name!r} is not valid", self.at_value(element, "name"))
            return
        alias = element.attributes.get("alias", re.split(r"[.-]", name)[-1])
        where = self.at_value(element, "alias") if "alias" in element.attributes else self.at_element(element)
        if not IDENTIFIER.match(alias) or len(alias) > MAX_NAME_LENGTH:
            self.report(codes.INVALID_NAME, f"extension alias {alias!r} is not a valid identifier", where)
            return
        if alias in self.aliases:
            self.report(codes.DUPLICATE_NAME, f"extension alias {alias!r} is already used", where)
            return
        self.aliases.add(alias)
        definition.extensions.append(ExtensionDef(name, alias))

    def build_tool(self, element: RawElement) -> ToolDef | None:
        children = self.check_element(element)
        name = element.attributes.get("name", "")
        args = self.build_args([child for child in children if child.tag == "Arg"], name)
        block = self.single(children, "Capabilities", f"tool {name!r}")
        handler = self.build_handler(children, element, f"tool {name!r}")
        declared = self.build_capabilities(block) if block is not None else None
        if handler is None:
            return None
        capabilities = declared if declared is not None else infer_capabilities(handler.code)
        return ToolDef(
            name=name,
            handler=handler,
            description=element.attributes.get("description", ""),
            args=args,
            capabilities=capabilities,
            capabilities_declared=declared is not None,
        )

    def build_args(self, elements: list[RawElement], tool: str) -> list[ArgDef]:
        names: dict[str, Any] = {}
        args = []
        for element in elements:
            self.check_element(element)
            name = self.check_name(element, f"argument of tool {tool!r}", names)
            type_ = self.check_type(element, "argument")
            required = self.check_boolean_literal(element, "required")
            has_default, default = self.check_default(element, type_, f"argument {element.attributes.get('name', '?')}")
            if name is not None and type_ is not None:
                description = element.attributes.get("description", "")
                args.append(ArgDef(name, type_, bool(required), default if has_default else None, description))
        return args

    def check_boolean_literal(self, element: RawElement, attribute: str) -> bool | None:
        raw = element.attributes.get(attribute)
        if raw is None:
            return None
        if raw.strip() not in _BOOLEANS:
            self.report(
                codes.INVALID_VALUE,
                f"{attribute!r} must be true or false, not {raw!r}",
                self.at_value(element, attribute),
            )
            return None
        return _BOOLEANS[raw.strip()]

    def build_capabilities(self, block: RawElement) -> list[str]:
        tokens: list[str] = []
        for element in self.check_element(block):
            self.check_element(element)
            if "type" not in element.attributes:
                continue
            try:
                token = capability_from_declaration(element.attributes["type"], element.attributes.get("scope"))
            except ValueError as exc:
                self.report(codes.INVALID_CAPABILITY, str(exc), self.at_value(element, "type"))
                continue
            capability = parse_capability(token)
            if capability.kind == "ext" and not capability.is_wildcard and capability.scope not in self.aliases:
                self.report(
                    codes.UNKNOWN_EXTENSION,
                    f"capability {token!r} names no <Extension> alias",
                    self.at_value(element, "type"),
                )
            if token not in tokens:
                tokens.append(token)
        return tokens

    def build_handler(self, children: list[RawElement], owner: RawElement, what: str) -> Handler | None:
        handlers = [child for child in children if child.tag == "Handler"]
        if not handlers:
            self.report(codes.MISSING_ELEMENT, f"{what} needs exactly one <Handler>", self.at_element(owner))
            return None
        for extra in handlers[1:]:
            self.report(codes.DUPLICATE_ELEMENT, f"{what} has more than one <Handler>", self.at_element(extra))
        element = handlers[0]
        self.check_element(element, text_allowed=True)
        handler = _handler_of(element)
        self.check_handler_syntax(handler, what)
        return handler

    def check_handler_syntax(self, handler: Handler, what: str) -> None:
        if not handler.code.strip():
            return
        if self.check_seconds >= CHECK_BUDGET_S:
            if self.check_seconds != math.inf:
                self.check_seconds = math.inf  # reported once, at the first handler left unchecked
                self.report_too_expensive(handler, what, f"the document's handlers took over {CHECK_BUDGET_S:g} s")
            return
        started = time.monotonic()
        try:
            problem = find_syntax_error(handler.code, self.checker)
        except CheckTooExpensive as exc:
            self.report_too_expensive(handler, what, str(exc))
            return
        finally:
            self.check_seconds += time.monotonic() - started
        if problem is None:
            return
        message, line, column = problem
        self.report(
            codes.HANDLER_SYNTAX,
            f"handler of {what} does not compile (handler line {line}): {message}",
            handler.nxml_position(line, column),
        )

    def report_too_expensive(self, handler: Handler, what: str, why: str) -> None:
        self.report(
            codes.HANDLER_TOO_EXPENSIVE,
            f"handler of {what} is too expensive to check ({why}); make the handlers shorter or fewer",
            handler.nxml_position(1, 1),
        )

    def build_lifecycle(self, element: RawElement, definition: PanelDefinition) -> None:
        children = self.check_element(element)
        on = element.attributes.get("on")
        if on is not None and on not in LIFECYCLE_EVENTS:
            self.report(
                codes.INVALID_VALUE,
                f"lifecycle 'on' must be mount, unmount or update, not {on!r}",
                self.at_value(element, "on"),
            )
            on = None
        elif on in definition.lifecycle:
            self.report(codes.DUPLICATE_ELEMENT, f"a second <Lifecycle on={on!r}>", self.at_element(element))
            on = None
        handler = self.build_handler(children, element, f"lifecycle {on or '?'}")
        if on is not None and handler is not None:
            definition.lifecycle[on] = handler

    # ------------------------------------------------------------------ <View>
    def build_view(self, view: RawElement) -> list[ViewNode]:
        self.check_attributes(view, (), ())
        self.check_no_text(view)
        return self.build_components(view.children, "<View>", scope=())

    def build_components(self, elements: list[RawElement], where: str, scope: tuple[str, ...]) -> list[ViewNode]:
        nodes = []
        for element in elements:
            if element.tag in COMPONENTS:
                nodes.append(self.build_component(element, scope))
            else:
                self.report_stray(element, where)
        return nodes

    def build_component(self, element: RawElement, scope: tuple[str, ...]) -> ViewNode:
        component = COMPONENTS[element.tag]
        required = [name for name, attr in component.attributes.items() if attr.required]
        self.check_attributes(element, component.attributes, required)
        props = dict(element.attributes)
        body = element.text.strip()
        text_attribute = component.text_attribute
        if text_attribute is not None and body:
            if text_attribute in props:
                self.check_no_text(element)
            else:
                props[text_attribute] = body
                self.check_text(element, body, scope)
        elif text_attribute is not None and text_attribute not in props:
            self.report(
                codes.MISSING_ATTRIBUTE,
                f"<{element.tag}> needs a {text_attribute!r} attribute or body text",
                self.at_element(element),
            )
        else:
            self.check_no_text(element)
        for name, value in element.attributes.items():
            attr = component.attributes.get(name)
            if attr is not None:
                self.check_value(element, name, value, attr, scope)
        inner_scope = scope
        if element.tag == "Iterate" and IDENTIFIER.match(element.attributes.get("as", "")):
            inner_scope = (*scope, element.attributes["as"])
        children: list[ViewNode] = []
        if component.container:
            children = self.build_components(element.children, f"<{element.tag}>", inner_scope)
        else:
            for child in element.children:
                self.report(
                    codes.MISPLACED_ELEMENT,
                    f"<{element.tag}> takes no child elements",
                    self.at_element(child),
                )
        return ViewNode(element.tag, props, children, element.line, element.column)

    def check_text(self, element: RawElement, body: str, scope: tuple[str, ...]) -> None:
        chunk = next((chunk for chunk in element.chunks if chunk.text.strip()), None)
        for found, _offset in itertools.islice(iter_expressions(body), MAX_ERRORS_PER_VALUE):
            at = (chunk.line, chunk.column) if chunk else self.at_element(element)
            if isinstance(found, ExpressionError):
                self.report(codes.INVALID_EXPRESSION, f"in <{element.tag}> text: {found.message}", at)
            else:
                for problem in self.reference_problems(found, scope):
                    self.report(problem[0], problem[1], at)

    def check_value(self, element: RawElement, name: str, value: str, attr: Attr, scope: tuple[str, ...]) -> None:
        kind = attr.kind
        if kind == "id":
            self.check_component_id(element, value)
        elif kind == "trigger":
            self.check_trigger(element, value)
        elif kind == "bind":
            self.check_bind(element, value)
        elif kind == "identifier":
            if not IDENTIFIER.match(value):
                self.report(
                    codes.INVALID_NAME,
                    f"{name!r} must be an identifier, not {value!r}",
                    self.at_value(element, name),
                )
        elif kind == "property":
            if not value.strip() or has_expressions(value):
                self.report(
                    codes.INVALID_VALUE,
                    f"{name!r} must name a property, not {value!r}",
                    self.at_value(element, name),
                )
        elif kind in ("binding", "condition"):
            literal_ok = kind == "condition" and value.strip() in _BOOLEANS
            if not literal_ok and not is_binding(value):
                self.report(
                    codes.INVALID_EXPRESSION,
                    f"{name!r} of <{element.tag}> must be a binding expression in {{…}}",
                    self.at_value(element, name),
                )
            else:
                self.check_expressions(element, name, value, scope)
        elif has_expressions(value):
            self.check_expressions(element, name, value, scope)
        else:
            self.check_literal(element, name, value, attr)

    def check_literal(self, element: RawElement, name: str, value: str, attr: Attr) -> None:
        if attr.kind == "enum" and value not in attr.choices:
            self.report(
                codes.INVALID_VALUE,
                f"{name!r} of <{element.tag}> must be one of {', '.join(attr.choices)}, not {value!r}",
                self.at_value(element, name),
            )
        elif attr.kind == "bool" and value.strip() not in _BOOLEANS:
            self.report(
                codes.INVALID_VALUE,
                f"{name!r} must be true, false or a binding",
                self.at_value(element, name),
            )
        elif attr.kind == "number" and not _NUMBER.match(value):
            self.report(codes.INVALID_VALUE, f"{name!r} must be a number or a binding", self.at_value(element, name))

    def check_component_id(self, element: RawElement, value: str) -> None:
        if not COMPONENT_ID.match(value):
            self.report(codes.INVALID_VALUE, f"component id {value!r} is not valid", self.at_value(element, "id"))
        elif value in self.component_ids:
            first = self.component_ids[value]
            self.report(
                codes.DUPLICATE_ID,
                f"component id {value!r} is already used by <{first.tag}> on line {first.line}",
                self.at_value(element, "id"),
            )
        else:
            self.component_ids[value] = element

    def check_trigger(self, element: RawElement, value: str) -> None:
        if value not in self.tool_names:
            known = ", ".join(sorted(self.tool_names)) or "none"
            self.report(
                codes.UNKNOWN_TRIGGER,
                f"trigger {value!r} names no tool (tools: {known})",
                self.at_value(element, "trigger"),
            )

    def check_bind(self, element: RawElement, value: str) -> None:
        key = bind_key(value)
        at = self.at_value(element, "bind")
        if key is None:
            self.report(codes.UNKNOWN_BIND, f"bind must be $state.<key>, not {value!r}", at)
        elif key in self.computed_names:
            self.report(codes.READONLY_BIND, f"bind names computed key {key!r}, which is read-only", at)
        elif key not in self.state_types:
            self.report(codes.UNKNOWN_BIND, f"bind names no state key: {key!r}", at)
        elif self.state_types[key] and self.state_types[key] not in _BIND_TYPES[element.tag]:
            self.report(
                codes.INVALID_TYPE,
                f"<{element.tag}> cannot bind {key!r} of type {self.state_types[key]} "
                f"(needs {' or '.join(_BIND_TYPES[element.tag])})",
                at,
            )

    # ------------------------------------------------------------------ expressions
    def check_expressions(self, element: RawElement, name: str, value: str, scope: tuple[str, ...]) -> None:
        reported = len(self.errors)
        for found, offset in iter_expressions(value):
            if len(self.errors) - reported >= MAX_ERRORS_PER_VALUE:
                return
            if isinstance(found, ExpressionError):
                self.report(
                    codes.INVALID_EXPRESSION,
                    f"{name!r} of <{element.tag}>: {found.message}",
                    self.at_value(element, name, offset + found.offset),
                )
            else:
                self.check_references(element, name, found, offset, scope)

    def parse_expression_at(self, element: RawElement, name: str, text: str, offset: int) -> Expression | None:
        try:
            return parse_expression(text)
        except ExpressionError as error:
            self.report(
                codes.INVALID_EXPRESSION,
                f"{name!r} of <{element.tag}>: {error.message}",
                self.at_value(element, name, offset + error.offset),
            )
            return None

    def check_references(
        self, element: RawElement, name: str, expression: Expression, offset: int, scope: tuple[str, ...]
    ) -> list[str]:
        keys = []
        for reference in expression.references:
            if reference.root == "$state" and reference.name is not None:
                keys.append(reference.name)
        for code, message, index in self.reference_problems(expression, scope):
            self.report(code, f"{name!r} of <{element.tag}>: {message}", self.at_value(element, name, offset + index))
        return keys

    def reference_problems(self, expression: Expression, scope: tuple[str, ...]) -> list[tuple[str, str, int]]:
        problems = []
        for reference in expression.references:
            if reference.root == "$state":
                key = reference.name
                if key is not None and key not in self.state_types and key not in self.computed_names:
                    problems.append(
                        (
                            codes.UNKNOWN_STATE_KEY,
                            f"$state.{key} is no state or computed key",
                            reference.offset,
                        )
                    )
            elif not scope:
                problems.append((codes.SCOPE_OUTSIDE_ITERATE, "$scope is used outside any <Iterate>", reference.offset))
            elif reference.name is not None and reference.name not in scope:
                problems.append(
                    (
                        codes.SCOPE_OUTSIDE_ITERATE,
                        f"$scope.{reference.name} has no enclosing <Iterate as={reference.name!r}>",
                        reference.offset,
                    )
                )
        return problems


def _handler_of(element: RawElement) -> Handler:
    positions: list[tuple[int, int, int]] = []
    offset = 0
    for chunk in element.chunks:
        positions.append((offset, chunk.line, chunk.column))
        offset += len(chunk.text)
    if positions:
        return Handler(element.text, positions[0][1], positions[0][2], positions)
    # An empty handler: point just after the start tag's name, which is close enough.
    return Handler("", element.line, element.column, [])


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, list | dict) else value
