"""Capability tokens: parsing, matching and static inference from handler code.

A token names one permission a handler holds:

    state:read:KEY      read a state key
    state:write:KEY     write, delete or mutate a state key (implies state:read:KEY)
    events:emit:NAME    call $emit(NAME, ...)
    view:update:ID      call $view.<command>(ID, ...)
    ext:ALIAS           call $ext.ALIAS.<method>(...)

The scope (KEY, NAME, ID, ALIAS) is either an exact name, ``*`` (anything) or a
prefix pattern ending in ``*`` (``user.*`` matches ``user.name``).

This module is pure Python: no Django, no wasmtime.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "Capability",
    "CapabilitySet",
    "capability_from_declaration",
    "infer_capabilities",
    "parse_capability",
]

KINDS = ("state:read", "state:write", "events:emit", "view:update", "ext")
MAX_TOKEN_LENGTH = 256

# Keys, event names and component ids: no whitespace, no '*' except one at the end.
_NAME_SCOPE = re.compile(r"^(?:\*|[^\s*]+\*?)$")
_ALIAS_SCOPE = re.compile(r"^(?:\*|[A-Za-z_$][A-Za-z0-9_$]*\*?)$")
_STATE_SCOPE = re.compile(r"^(?:\*|[^\s*:]+\*?)$")


@dataclass(frozen=True, slots=True)
class Capability:
    """One parsed token: ``kind`` is one of KINDS, ``scope`` the name or pattern."""

    kind: str
    scope: str

    @property
    def token(self) -> str:
        return f"{self.kind}:{self.scope}"

    @property
    def is_wildcard(self) -> bool:
        return self.scope.endswith("*")

    def matches(self, name: str) -> bool:
        """True when ``name`` falls inside this capability's scope."""
        if self.scope == "*":
            return True
        if self.scope.endswith("*"):
            return name.startswith(self.scope[:-1])
        return name == self.scope

    def __str__(self) -> str:
        return self.token


def parse_capability(token: str) -> Capability:
    """Parse a token such as ``state:write:count``; raise ValueError when it is malformed."""
    if not isinstance(token, str):
        raise ValueError(f"capability must be a string, got {type(token).__name__}")
    text = token.strip()
    if not text:
        raise ValueError("capability is empty")
    if len(text) > MAX_TOKEN_LENGTH:
        raise ValueError(f"capability is longer than {MAX_TOKEN_LENGTH} characters")
    if text.startswith("ext:"):
        return _checked(Capability("ext", text[4:]), _ALIAS_SCOPE, "an extension alias")
    for kind, pattern, what in (
        ("state:read", _STATE_SCOPE, "a state key"),
        ("state:write", _STATE_SCOPE, "a state key"),
        ("events:emit", _NAME_SCOPE, "an event name"),
        ("view:update", _NAME_SCOPE, "a component id"),
    ):
        if text.startswith(kind + ":"):
            return _checked(Capability(kind, text[len(kind) + 1 :]), pattern, what)
    raise ValueError(
        f"unknown capability {token!r}: expected state:read:KEY, state:write:KEY, "
        "events:emit:NAME, view:update:ID or ext:ALIAS"
    )


def _checked(capability: Capability, pattern: re.Pattern[str], what: str) -> Capability:
    if not capability.scope:
        raise ValueError(f"capability {capability.token!r} has no scope: give {what} or '*'")
    if not pattern.match(capability.scope):
        raise ValueError(f"capability {capability.token!r}: scope must be {what}, '*' or a prefix ending in '*'")
    return capability


def capability_from_declaration(type_: str, scope: str | None = None) -> str:
    """Turn ``<Capability type=... scope=...>`` into a token.

    ``type="state:write" scope="count"`` -> ``state:write:count``;
    ``type="ext:http" scope="*"`` (or no scope) -> ``ext:http``;
    ``type="ext" scope="http"`` -> ``ext:http``; a full token in ``type`` with no scope is
    accepted as is. Raises ValueError for anything else.
    """
    kind = (type_ or "").strip()
    scope_text = (scope or "").strip()
    if not kind:
        raise ValueError("capability type is empty")
    if kind == "ext":
        if not scope_text:
            raise ValueError("capability type 'ext' needs the extension alias as its scope")
        return parse_capability(f"ext:{scope_text}").token
    if kind.startswith("ext:"):
        if scope_text not in ("", "*"):
            # Tokens carry no per-method scope; refusing avoids a false sense of restriction.
            raise ValueError(
                f"capability {kind!r} grants every method of the extension; its scope must be '*' or absent"
            )
        return parse_capability(kind).token
    if kind in KINDS:
        if not scope_text:
            raise ValueError(f"capability type {kind!r} needs a scope (a name or '*')")
        return parse_capability(f"{kind}:{scope_text}").token
    if scope_text:
        raise ValueError(f"unknown capability type {kind!r}: expected one of {', '.join(KINDS)}")
    return parse_capability(kind).token


class CapabilitySet:
    """The grants of one execution.

    Write implies read: a key a handler may change it may also see, since every
    mutation of a nested value starts by reading it.
    """

    __slots__ = ("_by_kind", "tokens")

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        if isinstance(tokens, str):
            tokens = [tokens]
        self.tokens: list[str] = []
        self._by_kind: dict[str, list[Capability]] = {kind: [] for kind in KINDS}
        for token in tokens:
            capability = parse_capability(token)
            if capability.token in self.tokens:
                continue
            self.tokens.append(capability.token)
            self._by_kind[capability.kind].append(capability)

    def _granted(self, kind: str, name: str) -> bool:
        if not isinstance(name, str):
            return False
        return any(capability.matches(name) for capability in self._by_kind[kind])

    def can_read(self, key: str) -> bool:
        return self._granted("state:read", key) or self._granted("state:write", key)

    def can_write(self, key: str) -> bool:
        return self._granted("state:write", key)

    def can_emit(self, name: str) -> bool:
        return self._granted("events:emit", name)

    def can_update_view(self, component_id: str) -> bool:
        return self._granted("view:update", component_id)

    def can_use_ext(self, alias: str) -> bool:
        return self._granted("ext", alias)

    def allows(self, token: str) -> bool:
        """True when the concrete token (e.g. ``state:write:count``) is covered by this set."""
        try:
            wanted = parse_capability(token)
        except ValueError:
            return False
        if wanted.kind == "state:read":
            return self.can_read(wanted.scope)
        return self._granted(wanted.kind, wanted.scope)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"CapabilitySet({self.tokens!r})"


# --------------------------------------------------------------------------- inference

_WRAP_PREFIX = b"async function __h(){\n"
_WRAP_SUFFIX = b"\n}"
# Calls whose arguments are serialized by the host, so passing state to them cannot mutate it.
_SERIALIZING_CALLEES = ("$emit", "$log", "$view", "$ext")
# Parents through which an expression's value flows unchanged.
_VALUE_PASSING = {"parenthesized_expression", "await_expression", "sequence_expression"}
_PATTERNS = {"array_pattern", "object_pattern", "pair_pattern", "rest_pattern", "assignment_pattern"}

_thread_local = threading.local()


def _js_parser() -> Any:
    parser = getattr(_thread_local, "parser", None)
    if parser is None:
        import tree_sitter
        import tree_sitter_javascript

        parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_javascript.language()))
        _thread_local.parser = parser
    return parser


def parse_handler_tree(code: str) -> Any:
    """Parse handler code wrapped in an async function; return the tree-sitter tree.

    The wrapper takes one line of its own, so tree rows are the handler's 1-based lines.
    """
    source = _WRAP_PREFIX + code.encode("utf-8", "replace") + _WRAP_SUFFIX
    return _js_parser().parse(source)


def infer_capabilities(code: str) -> list[str]:
    """Tokens a handler needs, found statically; sorted and unique. Never raises.

    Dynamic names (``$state[k]``, ``$emit(name)``) grant nothing.
    """
    found: set[str] = set()
    if not isinstance(code, str) or not code.strip():
        return []
    try:
        tree = parse_handler_tree(code)
        for node in walk_tree(tree.root_node):
            _inspect(node, found)
    except Exception:  # noqa: S110 - inference is best effort; return what was found so far
        pass
    return sorted(found)


def walk_tree(root: Any) -> Iterator[Any]:
    """Every node of a tree-sitter tree, depth first, in source order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _inspect(node: Any, found: set[str]) -> None:
    kind = node.type
    if kind in ("member_expression", "subscript_expression"):
        target = node.child_by_field_name("object")
        if target is None or target.type != "identifier":
            return
        root_name = _text(target)
        if root_name == "$state":
            key = _static_member_name(node)
            if key is not None:
                _record_state_access(node, key, found)
        elif root_name == "$ext":
            alias = _static_member_name(node)
            if alias is not None:
                _add_literal(found, "ext", alias)
    elif kind == "call_expression":
        _record_call(node, found)


def _record_call(node: Any, found: set[str]) -> None:
    callee = node.child_by_field_name("function")
    first = _first_argument(node)
    if callee is None or first is None:
        return
    name = _string_literal(first)
    if name is None or not name:
        return
    if callee.type == "identifier" and _text(callee) == "$emit":
        _add_literal(found, "events:emit", name)
    elif callee.type == "member_expression":
        target = callee.child_by_field_name("object")
        if target is not None and target.type == "identifier" and _text(target) == "$view":
            _add_literal(found, "view:update", name)


def _add_literal(found: set[str], kind: str, name: str) -> None:
    """Add a token for an exact name; a name that would read as a pattern grants nothing."""
    if "*" in name:
        return
    try:
        found.add(parse_capability(f"{kind}:{name}").token)
    except ValueError:
        return


def _record_state_access(base: Any, key: str, found: set[str]) -> None:
    if not _valid_scope(key):
        return
    top, method_called = _climb_chain(base)
    reads, writes = _classify_use(top, is_base=top == base)
    if method_called:
        reads, writes = True, True
    if reads:
        found.add(f"state:read:{key}")
    if writes:
        found.add(f"state:write:{key}")


def _valid_scope(key: str) -> bool:
    return bool(_STATE_SCOPE.match(key)) and not key.endswith("*") and len(key) < MAX_TOKEN_LENGTH


def _climb_chain(base: Any) -> tuple[Any, bool]:
    """Follow ``$state.k.a[b].m(...)...`` upwards; report the top and whether a method was called."""
    node, method_called = base, False
    while True:
        parent = node.parent
        if parent is None:
            return node, method_called
        if parent.type in ("member_expression", "subscript_expression") and _is_field(parent, "object", node):
            node = parent
        elif parent.type == "call_expression" and node != base and _is_field(parent, "function", node):
            method_called = True
            node = parent
        elif parent.type == "non_null_expression":
            node = parent
        else:
            return node, method_called


def _classify_use(top: Any, *, is_base: bool) -> tuple[bool, bool]:
    """(reads, writes) for the value ``top`` in its surrounding expression."""
    node = top
    parent = node.parent
    if parent is None:
        return True, False
    kind = parent.type
    if kind == "assignment_expression" and _is_field(parent, "left", node):
        return not is_base, True
    if kind in ("augmented_assignment_expression", "update_expression"):
        if kind == "update_expression" or _is_field(parent, "left", node):
            return True, True
    if kind == "unary_expression" and _operator(parent) == "delete":
        return False, True
    if kind in _PATTERNS or (kind == "for_in_statement" and _is_field(parent, "left", node)):
        return False, True
    if kind == "for_in_statement" and _is_field(parent, "right", node):
        return True, True
    return True, _aliased(node)


def _aliased(node: Any) -> bool:
    """True when the value escapes into something that may later mutate it."""
    while True:
        parent = node.parent
        if parent is None:
            return False
        kind = parent.type
        if (
            kind in _VALUE_PASSING
            or (kind == "ternary_expression" and not _is_field(parent, "condition", node))
            or (kind == "binary_expression" and _operator(parent) in ("||", "&&", "??"))
        ):
            node = parent
            continue
        if kind == "variable_declarator" and _is_field(parent, "value", node):
            return True
        if kind == "assignment_expression" and _is_field(parent, "right", node):
            return True
        if kind == "arrow_function" and _is_field(parent, "body", node):
            return True
        if kind == "arguments":
            call = parent.parent
            return call is not None and not _serializing_call(call)
        return False


def _serializing_call(call: Any) -> bool:
    callee = call.child_by_field_name("function")
    while callee is not None and callee.type == "member_expression":
        callee = callee.child_by_field_name("object")
    return callee is not None and callee.type == "identifier" and _text(callee) in _SERIALIZING_CALLEES


def _static_member_name(node: Any) -> str | None:
    if node.type == "member_expression":
        prop = node.child_by_field_name("property")
        if prop is not None and prop.type == "property_identifier":
            return _text(prop)
        return None
    index = node.child_by_field_name("index")
    return _string_literal(index) if index is not None else None


def _first_argument(call: Any) -> Any:
    arguments = call.child_by_field_name("arguments")
    if arguments is None or arguments.type != "arguments":
        return None
    named = [child for child in arguments.named_children if child.type != "comment"]
    return named[0] if named else None


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "v": "\v"}


def _string_literal(node: Any) -> str | None:
    """The value of a plain string literal (or a template without substitutions)."""
    if node.type not in ("string", "template_string"):
        return None
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "string_fragment":
            parts.append(_text(child))
        elif child.type == "escape_sequence":
            escaped = _text(child)[1:]
            if len(escaped) == 1:
                parts.append(_SIMPLE_ESCAPES.get(escaped, escaped))
            else:
                return None
        else:
            return None
    return "".join(parts)


def _is_field(parent: Any, field: str, child: Any) -> bool:
    value = parent.child_by_field_name(field)
    return value is not None and value == child


def _operator(node: Any) -> str | None:
    op = node.child_by_field_name("operator")
    return _text(op) if op is not None else None


def _text(node: Any) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw or "")
