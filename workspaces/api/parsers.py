"""Request body parsers of the REST API."""

from __future__ import annotations

import codecs
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from workspaces.services.json_input import MAX_JSON_DEPTH, JSONTooDeep, loads


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than MAX_JSON_DEPTH (400 INVALID_REQUEST)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        parse_constant = json.strict_constant if self.strict else None
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads(text, MAX_JSON_DEPTH, parse_constant=parse_constant)
        except JSONTooDeep as exc:
            raise ParseError(f"{exc}; send flatter data") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
