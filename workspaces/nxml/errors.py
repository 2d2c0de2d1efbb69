"""Errors of NXML parsing and validation.

Every problem found in a document is an ``NXMLError`` with a stable ``code`` and a
1-based ``line`` and ``column`` in the NXML source. ``parse_nxml`` collects all of
them and raises one ``NXMLValidationError`` carrying the list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# XML level: the document is refused before any validation.
XML_SYNTAX = "XML_SYNTAX"  # not well formed, or not text at all
FORBIDDEN_XML = "FORBIDDEN_XML"  # DTD, entity declaration or external reference
TOO_LARGE = "TOO_LARGE"  # source above MAX_SOURCE_BYTES
TOO_DEEP = "TOO_DEEP"  # element nesting above MAX_DEPTH
TOO_MANY_ELEMENTS = "TOO_MANY_ELEMENTS"  # more than MAX_ELEMENTS elements

# Structure.
UNKNOWN_ELEMENT = "UNKNOWN_ELEMENT"  # a tag NXML does not define (or a wrong root)
MISPLACED_ELEMENT = "MISPLACED_ELEMENT"  # a known tag where it is not allowed
DUPLICATE_ELEMENT = "DUPLICATE_ELEMENT"  # a second <Data>, <Handler>, <Lifecycle on="mount">, ...
MISSING_ELEMENT = "MISSING_ELEMENT"  # a tool or lifecycle without its <Handler>
UNEXPECTED_TEXT = "UNEXPECTED_TEXT"  # text inside an element that takes none
UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
MISSING_ATTRIBUTE = "MISSING_ATTRIBUTE"
INVALID_VALUE = "INVALID_VALUE"  # an attribute value outside its enumeration or format
INVALID_NAME = "INVALID_NAME"  # a state/computed/tool/arg name or alias that is not an identifier

# Data and logic.
DUPLICATE_NAME = "DUPLICATE_NAME"  # state/computed/tool/arg names, extension aliases
DUPLICATE_ID = "DUPLICATE_ID"  # two components with the same id
INVALID_TYPE = "INVALID_TYPE"  # a state or arg type that does not exist
INVALID_DEFAULT = "INVALID_DEFAULT"  # a default that does not coerce to its type
COMPUTED_CYCLE = "COMPUTED_CYCLE"  # computed keys that depend on each other
HANDLER_SYNTAX = "HANDLER_SYNTAX"  # a handler that does not compile
HANDLER_TOO_EXPENSIVE = "HANDLER_TOO_EXPENSIVE"  # the handlers' syntax checks took too long
INVALID_CAPABILITY = "INVALID_CAPABILITY"
UNKNOWN_EXTENSION = "UNKNOWN_EXTENSION"  # an ext: capability naming no <Extension> alias

# Schedules.
UNKNOWN_TOOL = "UNKNOWN_TOOL"  # a <Schedule> tool naming no tool
INVALID_ARGS = "INVALID_ARGS"  # a <Schedule>'s args: not a JSON object, or not what the tool's <Arg>s take
INVALID_SCHEDULE = "INVALID_SCHEDULE"  # an every or cron value that does not parse, or neither or both given
INTERVAL_TOO_SHORT = "INTERVAL_TOO_SHORT"  # a schedule firing more often than SCHEDULE_MIN_INTERVAL
UNKNOWN_TIMEZONE = "UNKNOWN_TIMEZONE"  # a timezone that is not an IANA zone name

# View.
UNKNOWN_TRIGGER = "UNKNOWN_TRIGGER"  # trigger naming no tool
UNKNOWN_BIND = "UNKNOWN_BIND"  # bind naming no state key (or not of the $state.key form)
READONLY_BIND = "READONLY_BIND"  # bind naming a computed key
UNKNOWN_STATE_KEY = "UNKNOWN_STATE_KEY"  # an expression reading a key that is neither state nor computed
SCOPE_OUTSIDE_ITERATE = "SCOPE_OUTSIDE_ITERATE"  # $scope.x without an enclosing <Iterate as="x">
INVALID_EXPRESSION = "INVALID_EXPRESSION"  # a binding expression that does not parse or calls a function

# More problems than MAX_ERRORS: the list stops there, with this one at the end.
TOO_MANY_ERRORS = "TOO_MANY_ERRORS"

# Last resort, so that nothing but NXMLValidationError ever leaves the parser.
INTERNAL_ERROR = "INTERNAL_ERROR"

ALL_CODES = frozenset(value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str))


@dataclass(frozen=True, slots=True)
class NXMLError:
    code: str
    message: str
    line: int
    column: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.code} {self.message}"


class NXMLValidationError(ValueError):
    """The document was refused; ``errors`` lists every problem found, in source order."""

    def __init__(self, errors: list[NXMLError]) -> None:
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        summary = f"{len(self.errors)} NXML error(s)"
        if first is not None:
            summary += f"; first: {first}"
        super().__init__(summary)

    @property
    def codes(self) -> list[str]:
        return [error.code for error in self.errors]

    def to_list(self) -> list[dict[str, Any]]:
        return [error.to_dict() for error in self.errors]
