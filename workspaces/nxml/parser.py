"""Public entry points: ``parse_nxml`` and ``validate_nxml``."""

from __future__ import annotations

import logging

from . import errors as codes
from .errors import NXMLError, NXMLValidationError
from .javascript import SyntaxChecker
from .schedules import DEFAULT_MIN_INTERVAL_S
from .tree import PanelDefinition
from .validator import Validator
from .xmlreader import XMLRejected, check_size, read_xml

logger = logging.getLogger(__name__)


def parse_nxml(source: str, *, syntax_checker: SyntaxChecker | None = None,
               min_schedule_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> PanelDefinition:
    """Parse and validate an NXML document.

    ``syntax_checker(code)`` compiles one handler (``Runtime.check_syntax``) and returns
    None or ``{"code", "message", "location": {"line", "column"}}`` relative to the
    handler; without it tree-sitter checks the handlers. A <Schedule> may fire at most every
    ``min_schedule_interval_s`` seconds. Raises NXMLValidationError
    listing every problem, sorted by position. No other exception leaves this function.
    """
    try:
        definition, problems = _run(source, syntax_checker, min_schedule_interval_s)
    except Exception:  # the contract: only NXMLValidationError escapes; the log keeps the bug
        logger.exception("NXML validation failed unexpectedly")
        problems = [NXMLError(codes.INTERNAL_ERROR, "the document could not be validated", 1, 1)]
        definition = None
    if problems or definition is None:
        raise NXMLValidationError(problems)
    return definition


def validate_nxml(source: str, syntax_checker: SyntaxChecker | None = None) -> list[NXMLError]:
    """Every error of the document (empty when it is valid)."""
    try:
        parse_nxml(source, syntax_checker=syntax_checker)
    except NXMLValidationError as exc:
        return exc.errors
    return []


def _run(source: object, checker: SyntaxChecker | None,
         min_schedule_interval_s: float) -> tuple[PanelDefinition | None, list[NXMLError]]:
    try:
        text = check_size(source)
        root, source_map = read_xml(text)
    except XMLRejected as rejected:
        return None, [rejected.error]
    validator = Validator(root, source_map, checker, min_schedule_interval_s)
    definition = validator.build()
    ordered = sorted(validator.errors, key=lambda error: (error.line, error.column))
    return definition, ordered
