"""Hostile-safe XML reading into a raw element tree that remembers source positions.

defusedxml's expat reader refuses DTDs, entity declarations and external
references; on top of it the reader bounds the source size, the nesting depth and
the number of elements. Positions are 1-based lines and columns (in characters).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from . import errors as codes
from .errors import NXMLError

MAX_SOURCE_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_ELEMENTS = 2000

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TAG_NAME = re.compile(r"<[^\s/>]+")
_HANDLER_START = re.compile(r"<Handler[\s>]")
# A handler's JavaScript is XML text: '<' and '&' must be escaped or sit in a CDATA section.
HANDLER_ESCAPE_HINT = "wrap the handler in <![CDATA[ … ]]> or write &lt; for < and &amp; for &"
_ATTRIBUTE = re.compile(r"""\s*([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


class SourceMap:
    """Converts offsets in the source text to (line, column), the way expat counts lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self.line_starts, offset) - 1
        return index + 1, offset - self.line_starts[index] + 1

    def offset(self, line: int, column: int) -> int:
        """Offset of a 1-based line and column (clamped to the text)."""
        index = max(0, min(line - 1, len(self.line_starts) - 1))
        return min(self.line_starts[index] + max(column - 1, 0), len(self.text))


@dataclass(slots=True)
class AttributeSpan:
    """Where an attribute sits: its name and the first character of its raw value."""

    name_line: int
    name_column: int
    value_offset: int  # offset in the source of the value's first character
    raw_value: str  # as written, entities and line breaks not yet decoded


@dataclass(slots=True)
class TextChunk:
    text: str
    line: int
    column: int


@dataclass(slots=True)
class RawElement:
    tag: str
    attributes: dict[str, str]
    line: int
    column: int
    spans: dict[str, AttributeSpan] = field(default_factory=dict)
    children: list[RawElement] = field(default_factory=list)
    chunks: list[TextChunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)

    def attribute_position(self, name: str) -> tuple[int, int]:
        span = self.spans.get(name)
        return (span.name_line, span.name_column) if span else (self.line, self.column)


class XMLRejected(Exception):
    """The source cannot become a tree; carries the one error that says why."""

    def __init__(self, error: NXMLError) -> None:
        super().__init__(error.message)
        self.error = error


class _Abort(Exception):
    """Raised from inside the SAX callbacks to stop expat at a limit."""

    def __init__(self, error: NXMLError) -> None:
        super().__init__(error.message)
        self.error = error


class _TreeBuilder(ContentHandler):
    def __init__(self, reader: DefusedExpatParser, source: SourceMap) -> None:
        super().__init__()
        self._reader = reader
        self._source = source
        self._stack: list[RawElement] = []
        self._count = 0
        self.root: RawElement | None = None

    def _here(self) -> tuple[int, int]:
        return self._reader.getLineNumber() or 1, (self._reader.getColumnNumber() or 0) + 1

    def startElement(self, name: str, attrs: object) -> None:
        line, column = self._here()
        self._count += 1
        if self._count > MAX_ELEMENTS:
            raise _Abort(NXMLError(codes.TOO_MANY_ELEMENTS, f"more than {MAX_ELEMENTS} elements", line, column))
        if len(self._stack) >= MAX_DEPTH:
            raise _Abort(NXMLError(codes.TOO_DEEP, f"elements nested deeper than {MAX_DEPTH} levels", line, column))
        attributes = {str(key): str(value) for key, value in dict(attrs).items()}  # type: ignore[call-overload]
        element = RawElement(name, attributes, line, column, spans=self._locate_attributes(line, column))
        if self._stack:
            self._stack[-1].children.append(element)
        else:
            self.root = element
        self._stack.append(element)

    def endElement(self, name: str) -> None:
        self._stack.pop()

    def characters(self, content: str) -> None:
        if self._stack:
            line, column = self._here()
            self._stack[-1].chunks.append(TextChunk(content, line, column))

    def _locate_attributes(self, line: int, column: int) -> dict[str, AttributeSpan]:
        """Find each attribute inside the start tag; expat accepted it, so it is well formed."""
        text = self._source.text
        offset = self._source.offset(line, column)
        if not text.startswith("<", offset):
            return {}
        match = _TAG_NAME.match(text, offset)
        position = match.end() if match else offset + 1
        spans: dict[str, AttributeSpan] = {}
        while True:
            attribute = _ATTRIBUTE.match(text, position)
            if attribute is None:
                return spans
            quoted = 2 if attribute.group(2) is not None else 3
            name_line, name_column = self._source.position(attribute.start(1))
            spans[attribute.group(1)] = AttributeSpan(
                name_line, name_column, attribute.start(quoted), attribute.group(quoted)
            )
            position = attribute.end()


def check_size(source: object) -> str:
    """Return the source as text, or raise XMLRejected when it is not text or too large."""
    if isinstance(source, bytes | bytearray):
        if len(source) > MAX_SOURCE_BYTES:
            raise XMLRejected(_too_large(len(source)))
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise XMLRejected(NXMLError(codes.XML_SYNTAX, f"source is not valid UTF-8: {exc.reason}", 1, 1)) from None
    if not isinstance(source, str):
        raise XMLRejected(NXMLError(codes.XML_SYNTAX, f"source must be text, not {type(source).__name__}", 1, 1))
    if len(source) > MAX_SOURCE_BYTES:
        raise XMLRejected(_too_large(len(source)))
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, column = SourceMap(source).position(exc.start)
        raise XMLRejected(
            NXMLError(codes.XML_SYNTAX, "source contains a character that cannot be encoded", line, column)
        ) from None
    if size > MAX_SOURCE_BYTES:
        raise XMLRejected(_too_large(size))
    return source


def _too_large(size: int) -> NXMLError:
    return NXMLError(codes.TOO_LARGE, f"source is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes", 1, 1)


def read_xml(text: str) -> tuple[RawElement, SourceMap]:
    """Parse well-formed, DTD-free XML text into a RawElement tree, or raise XMLRejected."""
    source = SourceMap(text)
    reader = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder = _TreeBuilder(reader, source)
    reader.setContentHandler(builder)
    try:
        reader.feed(text)
        reader.close()
    except _Abort as abort:
        raise XMLRejected(abort.error) from None
    except DefusedXmlException as exc:
        doctype = text.find("<!DOCTYPE")
        if doctype >= 0:
            line, column = source.position(doctype)
        else:
            line, column = reader.getLineNumber() or 1, (reader.getColumnNumber() or 0) + 1
        raise XMLRejected(
            NXMLError(
                codes.FORBIDDEN_XML,
                f"DTDs, entity declarations and external references are not allowed ({type(exc).__name__})",
                line,
                column,
            )
        ) from None
    except SAXParseException as exc:
        line, column = exc.getLineNumber() or 1, (exc.getColumnNumber() or 0) + 1
        message = f"XML is not well formed: {exc.getMessage()}"
        if _inside_handler(text, source.offset(line, column)):
            message += f"; {HANDLER_ESCAPE_HINT}"
        raise XMLRejected(NXMLError(codes.XML_SYNTAX, message, line, column)) from None
    if builder.root is None:
        raise XMLRejected(NXMLError(codes.XML_SYNTAX, "XML is not well formed: no element found", 1, 1))
    return builder.root, source


def _inside_handler(text: str, offset: int) -> bool:
    """Whether ``offset`` lies in the text of a <Handler> that is still open there."""
    before = text[:offset]
    opened = max((match.start() for match in _HANDLER_START.finditer(before)), default=-1)
    return opened >= 0 and before.find("</Handler", opened) < 0


def value_position(source: SourceMap, span: AttributeSpan | None, index: int) -> tuple[int, int] | None:
    """Source position of character ``index`` of a decoded attribute value."""
    if span is None:
        return None
    raw = span.raw_value
    if "&" not in raw and "\r" not in raw:
        return source.position(span.value_offset + min(index, len(raw)))
    raw_index = 0
    decoded = 0
    while raw_index < len(raw) and decoded < index:
        if raw[raw_index] == "&":
            end = raw.find(";", raw_index)
            raw_index = end + 1 if end >= 0 else raw_index + 1
        elif raw.startswith("\r\n", raw_index):
            raw_index += 2
        else:
            raw_index += 1
        decoded += 1
    return source.position(span.value_offset + raw_index)
