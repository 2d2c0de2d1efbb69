"""Finding syntax errors in handler code.

The runtime's compiler is the authority (``Runtime.check_syntax``); without it a
tree-sitter parse of the handler wrapped in an async function stands in, so a
document can be validated with no sandbox at hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.capabilities import parse_handler_tree
from runtime.errors import ErrorCode

SyntaxChecker = Callable[[str], "dict[str, Any] | None"]

# What a checker answers when compiling the handler hit a limit rather than a syntax error.
_LIMIT_CODES = frozenset({ErrorCode.TIMEOUT, ErrorCode.MEMORY_LIMIT, ErrorCode.RESOURCE_LIMIT})


class CheckTooExpensive(Exception):
    """Compiling the handler ran into a limit of the checker; the message says which."""


def find_syntax_error(code: str, checker: SyntaxChecker | None = None) -> tuple[str, int, int] | None:
    """(message, line, column) relative to the code's first line (1-based), or None when it parses.

    Raises CheckTooExpensive when the checker gave up on a limit.
    """
    if checker is not None:
        try:
            result = checker(code)
        except Exception:  # a broken checker must not take validation down: fall back to tree-sitter
            return tree_sitter_syntax_error(code)
        if result is None:
            return None
        if isinstance(result, dict):
            if result.get("code") in _LIMIT_CODES:
                raise CheckTooExpensive(str(result.get("message") or result.get("code")))
            return _from_checker(result)
    return tree_sitter_syntax_error(code)


def _from_checker(result: dict[str, Any]) -> tuple[str, int, int]:
    message = str(result.get("message") or "handler does not compile")
    location = result.get("location")
    if not isinstance(location, dict):
        return message, 1, 1
    return message, _positive(location.get("line")), _positive(location.get("column"))


def _positive(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return max(number, 1)


def tree_sitter_syntax_error(code: str) -> tuple[str, int, int] | None:
    tree = parse_handler_tree(code)
    root = tree.root_node
    lines = code.split("\n")
    if root.has_error:
        node = _first_error(root)
        if node is not None:
            line, column = _code_position(lines, node.start_point)
            return _describe(node), line, column
        return "handler does not parse", 1, 1
    top_level = [child for child in root.named_children if child.type != "comment"]
    if len(top_level) != 1:
        body = top_level[0].child_by_field_name("body") if top_level else None
        point = body.end_point if body is not None else top_level[-1].start_point
        line, column = _code_position(lines, (point[0], max(point[1] - 1, 0)))
        return "unbalanced '}' ends the handler early", line, column
    return None


def _first_error(root: Any) -> Any:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return node
        stack.extend(reversed([child for child in node.children if child.has_error or child.is_missing]))
    return None


def _describe(node: Any) -> str:
    if node.is_missing:
        return f"syntax error: missing {node.type!r}"
    leaf = node
    while leaf.child_count:
        leaf = leaf.children[0]
    text = (leaf.text or b"").decode("utf-8", "replace")[:40]
    return f"syntax error: unexpected {text!r}" if text else "syntax error"


def _code_position(lines: list[str], point: Any) -> tuple[int, int]:
    """tree-sitter's (row, byte column) in the wrapped source -> 1-based (line, column) in the code."""
    row, byte_column = int(point[0]), int(point[1])
    if row < 1:
        return 1, 1
    if row > len(lines):
        return len(lines), len(lines[-1]) + 1
    prefix = lines[row - 1].encode("utf-8", "replace")[:byte_column]
    return row, len(prefix.decode("utf-8", "ignore")) + 1
