"""The restricted expression language of NXML bindings, parsed to validate it.

An expression reads ``$state`` and ``$scope`` paths (``.name``, ``?.name``,
``[expr]``) and combines them with literals (numbers, strings, true, false, null,
undefined, arrays, objects), arithmetic, comparison, ``&& || ?? !``, ``typeof``
and the ternary operator. Calls, assignments, functions and other names are
refused. The browser evaluates bindings; the server only checks them and learns
which state keys and scope names they reference.

An attribute value is a literal (no braces), a binding (the whole value is one
``{…}``) or a template (text with ``{…}`` parts).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_NESTING = 32
ROOTS = ("$state", "$scope")
# Names that lead from data to prototypes and constructors: the browser refuses them too.
BLOCKED_KEYS = frozenset({"__proto__", "constructor", "prototype"})
_LOGICAL = ("&&", "||", "??")
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "undefined": None}

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_PUNCTUATORS = (
    "===", "!==", "...", "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "=>", "++", "--",
    "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}", "=",
)  # fmt: skip
_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||", "??"),
    ("&&",),
    ("===", "!==", "==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
)


class ExpressionError(Exception):
    """A binding that does not parse; ``offset`` is the index in the expression text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number" | "string" | "name" | "punct" | "end"
    text: str
    offset: int
    value: Any = None


@dataclass(slots=True)
class Reference:
    """``$state.key`` or ``$scope.name``; ``name`` is None when the member is computed at run time."""

    root: str
    name: str | None
    offset: int


@dataclass(slots=True)
class Expression:
    source: str
    tree: Any
    references: list[Reference] = field(default_factory=list)

    @property
    def state_keys(self) -> list[str]:
        return [ref.name for ref in self.references if ref.root == "$state" and ref.name is not None]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            token = _read_string(text, index)
        elif char.isdigit() or (char == "." and text[index + 1 : index + 2].isdigit()):
            token = _read_number(text, index)
        elif _IDENTIFIER.match(text, index):
            match = _IDENTIFIER.match(text, index)
            assert match is not None
            token = Token("name", match.group(), index)
        else:
            token = _read_punctuator(text, index)
        tokens.append(token)
        index = token.offset + len(token.text)
    tokens.append(Token("end", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> Token:
    quote = text[start]
    chars: list[str] = []
    index = start + 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while index < len(text):
        char = text[index]
        if char == quote:
            return Token("string", text[start : index + 1], start, "".join(chars))
        if char == "\\" and text[index + 1 : index + 2] in ("u", "x"):
            decoded, index = _read_escape(text, index)
            chars.append(decoded)
            continue
        if char == "\\" and index + 1 < len(text):
            chars.append(escapes.get(text[index + 1], text[index + 1]))
            index += 2
            continue
        if char in "\r\n":
            break
        chars.append(char)
        index += 1
    raise ExpressionError("unterminated string", start)


_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|u\{([0-9a-fA-F]{1,6})\})")


def _read_escape(text: str, start: int) -> tuple[str, int]:
    """``\\xHH``, ``\\uHHHH`` or ``\\u{H…}`` at ``start``: the character and the index after it."""
    match = _ESCAPE.match(text, start)
    code = int(next(group for group in match.groups() if group), 16) if match else -1
    if match is None or code > 0x10FFFF:
        raise ExpressionError("bad escape sequence", start)
    return chr(code), match.end()


def _read_number(text: str, start: int) -> Token:
    match = _NUMBER.match(text, start)
    if match is None:
        raise ExpressionError("malformed number", start)
    literal = match.group()
    if _IDENTIFIER.match(text, match.end()) and not text[match.end()].isdigit():
        raise ExpressionError(f"malformed number {text[start : match.end() + 1]!r}", start)
    value = int(literal, 16) if literal[:2].lower() == "0x" else float(literal)
    return Token("number", literal, start, value)


def _read_punctuator(text: str, start: int) -> Token:
    for punctuator in _PUNCTUATORS:
        if text.startswith(punctuator, start):
            if punctuator == "?." and text[start + 2 : start + 3].isdigit():
                continue  # `a ?.5 : b` is a ternary, not optional chaining
            return Token("punct", punctuator, start)
    raise ExpressionError(f"unexpected character {text[start]!r}", start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0
        self.depth = 0
        self.references: list[Reference] = []
        self.grouped: set[int] = set()  # ids of nodes written in parentheses

    # -- token helpers
    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def _at(self, *texts: str) -> bool:
        token = self.current
        return token.kind == "punct" and token.text in texts

    def _advance(self) -> Token:
        token = self.current
        if token.kind != "end":
            self.position += 1
        return token

    def _expect(self, text: str) -> Token:
        if not self._at(text):
            raise ExpressionError(f"expected {text!r}, found {self._describe(self.current)}", self.current.offset)
        return self._advance()

    @staticmethod
    def _describe(token: Token) -> str:
        return "end of expression" if token.kind == "end" else repr(token.text)

    def _enter(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(f"expression nested deeper than {MAX_NESTING} levels", offset)

    # -- grammar
    def parse(self) -> Any:
        if self.current.kind == "end":
            raise ExpressionError("empty expression", 0)
        tree = self.expression()
        if self.current.kind != "end":
            raise ExpressionError(f"unexpected {self._describe(self.current)}", self.current.offset)
        return tree

    def expression(self) -> Any:
        self._enter(self.current.offset)
        try:
            condition = self.binary(0)
            if self._at("?"):
                self._advance()
                when_true = self.expression()
                self._expect(":")
                when_false = self.expression()
                return ("?:", condition, when_true, when_false)
            if self._at("=", "=>", "++", "--"):
                raise ExpressionError(self._refusal(self.current.text), self.current.offset)
            return condition
        finally:
            self.depth -= 1

    @staticmethod
    def _refusal(operator: str) -> str:
        if operator == "=>":
            return "functions are not allowed in bindings"
        return "assignments are not allowed in bindings"

    def binary(self, level: int) -> Any:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self._at(*_BINARY_LEVELS[level]):
            token = self._advance()
            left = (token.text, left, self.binary(level + 1))
            if self._mixes_nullish(left):
                raise ExpressionError("?? cannot be mixed with && or || without parentheses", token.offset)
        return left

    def _mixes_nullish(self, node: Any) -> bool:
        """JavaScript refuses ``a || b ?? c`` and ``a ?? b && c``: the grouping must be written out."""
        def logical(side: Any) -> bool:
            return (side[0] in _LOGICAL and id(side) not in self.grouped
                    and (side[0] == "??") != (node[0] == "??"))
        return node[0] in _LOGICAL and (logical(node[1]) or logical(node[2]))

    def unary(self) -> Any:
        token = self.current
        if self._at("!", "-", "+") or (token.kind == "name" and token.text == "typeof"):
            self._advance()
            self._enter(token.offset)
            try:
                return ("unary" + token.text, self.unary())
            finally:
                self.depth -= 1
        if self._at("++", "--"):
            raise ExpressionError(self._refusal(token.text), token.offset)
        return self.postfix()

    def postfix(self) -> Any:
        start = self.current
        node = self.primary()
        path: list[str | None] = []
        while True:
            if self._at(".", "?."):
                self._advance()
                name = self.current
                if name.kind != "name":
                    raise ExpressionError(f"expected a property name, found {self._describe(name)}", name.offset)
                self._advance()
                self._refuse_blocked(name.text, name.offset)
                path.append(name.text)
                node = ("get", node, name.text)
            elif self._at("["):
                self._advance()
                index_start = self.current
                index = self.expression()
                self._expect("]")
                literal = index_start.value if index_start.kind in ("string", "number") else None
                if isinstance(literal, str) and index[0] == "lit":
                    self._refuse_blocked(literal, index_start.offset)
                path.append(str(literal) if isinstance(literal, str) and index[0] == "lit" else None)
                node = ("index", node, index)
            elif self._at("("):
                raise ExpressionError("function calls are not allowed in bindings", self.current.offset)
            else:
                break
        if start.kind == "name" and start.text in ROOTS:
            self.references.append(Reference(start.text, path[0] if path else None, start.offset))
        return node

    def primary(self) -> Any:
        token = self.current
        if token.kind in ("number", "string"):
            self._advance()
            return ("lit", token.value)
        if token.kind == "name":
            return self._name(token)
        if self._at("("):
            self._advance()
            inner = self.expression()
            self._expect(")")
            self.grouped.add(id(inner))
            return inner
        if self._at("["):
            return self._array(token)
        if self._at("{"):
            return self._object(token)
        raise ExpressionError(f"unexpected {self._describe(token)}", token.offset)

    @staticmethod
    def _refuse_blocked(name: str, offset: int) -> None:
        if name in BLOCKED_KEYS:
            raise ExpressionError(f"access to {name!r} is not allowed", offset)

    def _name(self, token: Token) -> Any:
        self._advance()
        if token.text in _LITERAL_NAMES:
            return ("lit", _LITERAL_NAMES[token.text])
        if token.text in ROOTS:
            return ("root", token.text)
        raise ExpressionError(
            f"unknown name {token.text!r}: bindings may only use $state, $scope and literals", token.offset
        )

    def _array(self, opening: Token) -> Any:
        self._enter(opening.offset)
        self._advance()
        items = []
        while not self._at("]"):
            items.append(self.expression())
            if not self._at("]"):
                self._expect(",")
        self._advance()
        self.depth -= 1
        return ("array", items)

    def _object(self, opening: Token) -> Any:
        self._enter(opening.offset)
        self._advance()
        entries = []
        while not self._at("}"):
            key = self.current
            if key.kind not in ("name", "string", "number"):
                raise ExpressionError(f"expected a property name, found {self._describe(key)}", key.offset)
            self._advance()
            name = key.value if key.kind != "name" else key.text
            if isinstance(name, str) and name in BLOCKED_KEYS:
                raise ExpressionError(f"property name {name!r} is not allowed", key.offset)
            self._expect(":")
            entries.append((name, self.expression()))
            if not self._at("}"):
                self._expect(",")
        self._advance()
        self.depth -= 1
        return ("object", entries)


def parse_expression(text: str) -> Expression:
    """Parse one expression; raise ExpressionError with an offset into ``text``."""
    parser = _Parser(text)
    tree = parser.parse()
    return Expression(text, tree, parser.references)


# --------------------------------------------------------------------------- attribute values


@dataclass(frozen=True, slots=True)
class TemplatePart:
    """A piece of an attribute value: literal text, or an expression found between braces."""

    text: str
    offset: int  # index of the part's first character in the attribute value
    is_expression: bool


def split_template(value: str) -> list[TemplatePart]:
    """Cut a value into literal text and ``{…}`` expressions (braces and quotes nest)."""
    parts: list[TemplatePart] = []
    literal_start = 0
    index = 0
    while index < len(value):
        if value[index] != "{":
            index += 1
            continue
        end = _matching_brace(value, index)
        if index > literal_start:
            parts.append(TemplatePart(value[literal_start:index], literal_start, False))
        parts.append(TemplatePart(value[index + 1 : end], index + 1, True))
        index = literal_start = end + 1
    if literal_start < len(value):
        parts.append(TemplatePart(value[literal_start:], literal_start, False))
    return parts


def _matching_brace(value: str, start: int) -> int:
    depth = 0
    index = start
    quote = ""
    while index < len(value):
        char = value[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ExpressionError("'{' is never closed", start)


def is_binding(value: str) -> bool:
    """True when the whole value (outer spaces aside) is one ``{…}`` expression."""
    try:
        parts = split_template(value)
    except ExpressionError:
        return False
    meaningful = [s for s in parts if s.is_expression or s.text.strip()]
    return len(meaningful) == 1 and meaningful[0].is_expression


def has_expressions(value: str) -> bool:
    return "{" in value


def iter_expressions(value: str) -> Iterator[tuple[Expression | ExpressionError, int]]:
    """Every expression in an attribute value, each with the offset of its text in the value.

    Errors are yielded (not raised) so that a caller can report all of them, or stop early.
    """
    try:
        parts = split_template(value)
    except ExpressionError as error:
        yield error, 0
        return
    for part in parts:
        if not part.is_expression:
            continue
        try:
            yield parse_expression(part.text), part.offset
        except ExpressionError as error:
            yield error, part.offset


def expressions_of(value: str) -> list[tuple[Expression | ExpressionError, int]]:
    return list(iter_expressions(value))
