"""Checking a <Computed> value: one JavaScript expression that only reads ``$state``.

The expression runs in the sandbox with read access alone, so it could not change anything
anyway; these checks say so at validation, at the line and column of the offence, and find
the state keys it reads (for the dependency order of computed keys and for typos).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.capabilities import parse_handler_tree, walk_tree

from . import errors as codes
from .javascript import tree_sitter_syntax_error

_PREFIX = "return ("
_SUFFIX = "\n);"
# Methods that change the array, map or set they are called on.
MUTATING_METHODS = frozenset({
    "push", "pop", "shift", "unshift", "splice", "sort", "reverse", "fill", "copyWithin", "set", "add",
    "delete", "clear",
})
FORBIDDEN_NAMES = {"$emit": "events", "$ext": "extension calls", "$view": "view updates"}


@dataclass
class Problem:
    message: str
    offset: int  # into the expression text
    code: str = codes.INVALID_EXPRESSION


@dataclass
class ComputedCheck:
    problems: list[Problem] = field(default_factory=list)
    references: list[str] = field(default_factory=list)


def check_expression(text: str) -> ComputedCheck:
    """Syntax, writes and forbidden names of a computed expression, and the ``$state`` keys it reads."""
    check = ComputedCheck()
    code = _PREFIX + text + _SUFFIX
    starts = _line_starts(code)
    error = tree_sitter_syntax_error(code)
    if error is not None:
        message, line, column = error
        check.problems.append(Problem(message, _offset(starts, line - 1, column - 1, code)))
        return check
    body = parse_handler_tree(code).root_node.named_children[0].child_by_field_name("body")
    statements = [node for node in body.named_children if node.type != "comment"]
    if len(statements) != 1:
        node = statements[1] if len(statements) > 1 else body
        check.problems.append(Problem("a computed value is one expression, not statements",
                                      _node_offset(starts, node, code)))
        return check
    for node in walk_tree(statements[0]):
        problem = _offence(node)
        if problem is not None:
            check.problems.append(Problem(problem, _node_offset(starts, node, code)))
        elif node.type == "identifier" and _text(node) == "$scope":
            check.problems.append(Problem("$scope is not available in a <Computed>", _node_offset(starts, node, code),
                                          codes.SCOPE_OUTSIDE_ITERATE))
        key = _state_key(node)
        if key is not None and key not in check.references:
            check.references.append(key)
    return check


def _offence(node: Any) -> str | None:
    if node.type in ("assignment_expression", "augmented_assignment_expression"):
        if _roots_at_state(node.child_by_field_name("left")):
            return "a computed value may not assign to $state"
    elif node.type == "update_expression":
        if _roots_at_state(node.child_by_field_name("argument")):
            return "a computed value may not change $state (++ or --)"
    elif node.type == "unary_expression" and _text(node).startswith("delete"):
        if _roots_at_state(node.child_by_field_name("argument")):
            return "a computed value may not delete from $state"
    elif node.type == "call_expression":
        function = node.child_by_field_name("function")
        if function is not None and function.type == "member_expression":
            method = function.child_by_field_name("property")
            if method is not None and _text(method) in MUTATING_METHODS and _roots_at_state(
                    function.child_by_field_name("object")):
                return f"a computed value may not change $state ({_text(method)}() changes what it is called on)"
    elif node.type == "identifier" and _text(node) in FORBIDDEN_NAMES:
        return f"a computed value cannot use {_text(node)}: it has no {FORBIDDEN_NAMES[_text(node)]}"
    return None


def _roots_at_state(node: Any) -> bool:
    while node is not None and node.type in ("member_expression", "subscript_expression",
                                             "parenthesized_expression"):
        node = node.child_by_field_name("object") or (node.named_children[0] if node.named_children else None)
    return node is not None and node.type == "identifier" and _text(node) == "$state"


def _state_key(node: Any) -> str | None:
    if node.type not in ("member_expression", "subscript_expression"):
        return None
    target = node.child_by_field_name("object")
    if target is None or target.type != "identifier" or _text(target) != "$state":
        return None
    if node.type == "member_expression":
        name = node.child_by_field_name("property")
        return _text(name) if name is not None else None
    index = node.child_by_field_name("index")
    if index is not None and index.type == "string":
        return _text(index)[1:-1] or None
    return None


def _text(node: Any) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _line_starts(code: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(code):
        if char == "\n":
            starts.append(index + 1)
    return starts


def _offset(starts: list[int], row: int, column: int, code: str) -> int:
    """A (row, character column) of the code -> an offset into the expression, clamped to it."""
    position = starts[min(max(row, 0), len(starts) - 1)] + max(column, 0)
    return min(max(position - len(_PREFIX), 0), max(len(code) - len(_PREFIX) - len(_SUFFIX), 0))


def _node_offset(starts: list[int], node: Any, code: str) -> int:
    row, byte_column = node.start_point
    row -= 1  # the wrapper's first line
    line = code[starts[row]:] if 0 <= row < len(starts) else ""
    column = len(line.encode("utf-8", "replace")[:byte_column].decode("utf-8", "ignore"))
    return _offset(starts, row, column, code)
