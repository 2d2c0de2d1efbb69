"""Handler code as the runtime takes it: what makes it unusable, and its cache key."""

from __future__ import annotations

import functools
import hashlib

from .errors import ErrorCode, ErrorInfo, error_dict
from .limits import MAX_CODE_BYTES


@functools.lru_cache(maxsize=4096)
def _known_handler(code: str) -> tuple[str, ErrorInfo | None]:
    problem = check_code(code)
    return ("" if problem else hashlib.sha256(code.encode("utf-8")).hexdigest()[:32]), problem


def identify(code: object) -> tuple[str, ErrorInfo | None]:
    """The cache key of a handler and, when its code is unusable, why."""
    if not isinstance(code, str):
        return "", error_dict(ErrorCode.INVALID_HANDLER, "handler code must be a string")
    return _known_handler(code)


def check_code(code: str) -> ErrorInfo | None:
    try:
        size = len(code.encode("utf-8"))
    except UnicodeEncodeError:
        return error_dict(ErrorCode.INVALID_HANDLER, "handler code is not valid Unicode text")
    if size > MAX_CODE_BYTES:
        return error_dict(ErrorCode.INVALID_HANDLER, f"handler code is larger than {MAX_CODE_BYTES} bytes")
    if "\x00" in code:
        return error_dict(ErrorCode.INVALID_HANDLER, "handler code contains a NUL character")
    return None
