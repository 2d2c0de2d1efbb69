"""NXML: the panel document format. Pure Python (no Django), safe on hostile input.

definition = parse_nxml(source)               # or NXMLValidationError(.errors)
errors = validate_nxml(source)                # [] when valid
"""

from .errors import ALL_CODES, NXMLError, NXMLValidationError
from .parser import parse_nxml, validate_nxml
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
)
from .validator import coerce_default
from .xmlreader import MAX_DEPTH, MAX_ELEMENTS, MAX_SOURCE_BYTES

__all__ = [
    "ALL_CODES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_SOURCE_BYTES",
    "ArgDef",
    "ComputedDef",
    "EventDef",
    "ExtensionDef",
    "Handler",
    "NXMLError",
    "NXMLValidationError",
    "PanelDefinition",
    "StateDef",
    "ToolDef",
    "ViewNode",
    "coerce_default",
    "parse_nxml",
    "validate_nxml",
]
