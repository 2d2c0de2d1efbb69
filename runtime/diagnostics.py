"""Guest errors made fit for callers: known code, handler-relative location, bounded text.

QuickJS reports positions in the compiled wrapper; callers want the handler's own lines,
the offending line as a snippet, and only the stack frames of the handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .errors import ERROR_CODES, ErrorCode, ErrorInfo, Location, error_dict
from .limits import MAX_ERROR_MESSAGE, MAX_ERROR_STACK

logger = logging.getLogger("nexus.runtime")

_FRAME = re.compile(r"<input>:(\d+):(\d+)")
_MAX_STACK_LINES = 12


def caller_error(raw: Mapping[str, Any], code: str) -> ErrorInfo:
    """Normalize a guest error: known code, message, handler-relative location and stack."""
    error_code = raw.get("code")
    if error_code not in ERROR_CODES:
        error_code = ErrorCode.INTERNAL_ERROR
    message = raw.get("message")
    text = cut(message, MAX_ERROR_MESSAGE) if isinstance(message, str) and message else error_code
    error = error_dict(error_code, text)
    stack = raw.get("stack")
    if isinstance(stack, str):
        location, clean = handler_stack(cut(stack, MAX_ERROR_STACK))
        if location is not None and error_code == ErrorCode.COMPILATION_ERROR:
            location = syntax_location(code, location["line"])
            clean = f"    at handler:{location['line']}:{location['column']}"
        if location is not None:
            _locate(error, code, location)
        if clean:
            error["stack"] = clean
    if error_code == ErrorCode.COMPILATION_ERROR and "location" not in error:
        location = any_syntax_error(code)
        if location is not None:
            _locate(error, code, location)
    resource = raw.get("resource")
    if isinstance(resource, str):
        error["resource"] = resource
    return error


def _locate(error: ErrorInfo, code: str, location: Location) -> None:
    error["location"] = location
    snippet = snippet_of(code, location["line"])
    if snippet is not None:
        error["snippet"] = snippet


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, ending with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    kept = limit - 48  # room for the marker, as in guest/glue.js
    return f"{text[:kept]}… [{len(text) - kept} more characters cut]"


def handler_stack(stack: str) -> tuple[Location | None, str]:
    """First handler frame as a location, and the stack keeping only handler frames.

    Line 1 of the compiled source is the wrapper; handler line N is source line N + 1.
    """
    location: Location | None = None
    kept: list[str] = []
    for line in stack.splitlines():
        match = _FRAME.search(line)
        if match is None:
            continue
        row = max(int(match.group(1)) - 1, 1)
        column = int(match.group(2))
        if location is None:
            location = {"line": row, "column": column}
        kept.append(_FRAME.sub(f"handler:{row}:{column}", line.rstrip()))
        if len(kept) >= _MAX_STACK_LINES:
            break
    return location, "\n".join(kept)


def syntax_location(code: str, line: int) -> Location:
    """Where a syntax error is, from QuickJS's line and a second parse for the column.

    QuickJS reports the right line but not a usable column inside the wrapper; the
    first error node tree-sitter finds on that line gives it. Past the end of the code
    (an unclosed construct), the error sits at the end of the last line.
    """
    lines = code.split("\n")
    if line > len(lines):
        return {"line": len(lines), "column": len(lines[-1].rstrip("\r")) + 1}
    text = lines[line - 1]
    column = len(text) - len(text.lstrip()) + 1
    try:
        from .capabilities import parse_handler_tree

        found = first_error_on(parse_handler_tree(code).root_node, line)
        if found is not None:
            # tree-sitter columns count UTF-8 bytes.
            column = len(text.encode("utf-8")[:found].decode("utf-8", "ignore")) + 1
    except Exception:  # the column is a refinement; keep the estimate
        logger.debug("syntax error column lookup failed", exc_info=True)
    return {"line": line, "column": column}


def any_syntax_error(code: str) -> Location | None:
    """Location of the first syntax error tree-sitter sees anywhere in ``code``."""
    try:
        from .capabilities import parse_handler_tree

        stack = [parse_handler_tree(code).root_node]
        while stack:
            node = stack.pop()
            if node.type == "ERROR" or node.is_missing:
                row, byte_column = node.start_point
                lines = code.split("\n")
                if 1 <= row <= len(lines):
                    prefix = lines[row - 1].encode("utf-8")[:byte_column].decode("utf-8", "ignore")
                    return {"line": row, "column": len(prefix) + 1}
                return None
            if node.has_error or node.is_missing:
                stack.extend(reversed(node.children))
    except Exception:  # a location is a refinement
        logger.debug("syntax error lookup failed", exc_info=True)
    return None


def first_error_on(root: Any, line: int) -> int | None:
    """Byte column of the first ERROR or MISSING node starting on ``line`` (tree rows = lines)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if (node.type == "ERROR" or node.is_missing) and node.start_point[0] == line:
            return int(node.start_point[1])
        if node.has_error or node.is_missing:
            stack.extend(reversed(node.children))
    return None


def snippet_of(code: str, line: int) -> str | None:
    lines = code.split("\n")
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\r")[:200]
    return None
