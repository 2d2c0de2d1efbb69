"""Type checks for state values and tool arguments (the NXML types)."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def matches_type(type_name: str, value: Any) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "list":
        return isinstance(value, list)
    if type_name == "object":
        return isinstance(value, dict)
    return False


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def unstorable_text(value: Any, _depth: int = 0) -> str | None:
    """Why a JSON value cannot be stored and sent back, or None.

    Strings may not hold NUL (PostgreSQL's JSON refuses it) or unpaired UTF-16 surrogates
    (they cannot be encoded as UTF-8). Keys count as strings too.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return "text contains a NUL character"
        if _SURROGATE.search(value):
            return "text contains an unpaired surrogate"
        return None
    if _depth > 200:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable_text(key, _depth + 1) or unstorable_text(item, _depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = unstorable_text(item, _depth + 1)
            if problem:
                return problem
    return None
