"""Broken and hostile NXML: every document is refused with located errors, nothing else escapes.

Each file of tests/corpus/nxml names its expected codes in a first-line comment
``<!-- expect: CODE ... -->`` or, when nothing may precede the XML declaration, in a
sidecar ``NAME.expect``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspaces.nxml import MAX_DEPTH, MAX_ELEMENTS, NXMLValidationError, parse_nxml
from workspaces.nxml.errors import ALL_CODES, INTERNAL_ERROR

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "nxml"
SAMPLES = Path(__file__).resolve().parent / "samples"
HEADER = re.compile(r"^<!-- expect: ([A-Z_ ]+) -->")
DOCUMENTS = sorted(CORPUS.glob("*.nxml"))


def expected_codes(path: Path) -> set[str]:
    sidecar = path.with_suffix(".expect")
    if sidecar.exists():
        return set(sidecar.read_text().split())
    match = HEADER.match(path.read_text())
    assert match, f"{path.name} names no expected codes"
    return set(match.group(1).split())


def refusal(source: object) -> NXMLValidationError:
    """Parse, insisting that the only outcome is a located NXMLValidationError."""
    with pytest.raises(NXMLValidationError) as caught:
        parse_nxml(source)  # type: ignore[arg-type]
    errors = caught.value.errors
    assert errors
    for error in errors:
        assert error.code in ALL_CODES and error.code != INTERNAL_ERROR, error
        assert isinstance(error.line, int) and error.line >= 1, error
        assert isinstance(error.column, int) and error.column >= 1, error
        assert error.message
    return caught.value


def test_corpus_is_large_enough() -> None:
    assert len(DOCUMENTS) >= 40


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.stem for path in DOCUMENTS])
def test_corpus_document_is_refused_with_every_expected_code(path: Path) -> None:
    expected = expected_codes(path)
    assert expected <= ALL_CODES, f"unknown codes in {path.name}: {expected - ALL_CODES}"
    found = set(refusal(path.read_text()).codes)
    assert expected <= found, f"{path.name}: missing {expected - found}, got {found}"


def test_five_errors_at_once() -> None:
    found = refusal((CORPUS / "five_errors_at_once.nxml").read_text()).errors
    assert len(found) >= 5
    assert len({(error.line, error.column) for error in found}) == len(found)


def test_ten_megabyte_body_is_refused_quickly() -> None:
    body = '<NexusPanel title="big"><View><Text content="' + "A" * (10 * 1024 * 1024) + '" /></View></NexusPanel>'
    started = time.perf_counter()
    assert refusal(body).codes == ["TOO_LARGE"]
    assert time.perf_counter() - started < 1.0
    assert refusal(body.encode()).codes == ["TOO_LARGE"]


def test_too_many_elements() -> None:
    body = "<Text content='x' />" * (MAX_ELEMENTS + 1)
    source = f'<NexusPanel title="many"><View>{body}</View></NexusPanel>'
    assert refusal(source).codes == ["TOO_MANY_ELEMENTS"]


def test_depth_limit_boundary() -> None:
    def nested(levels: int) -> str:
        # NexusPanel and View take two levels; Layouts fill the rest.
        layouts = levels - 2
        return '<NexusPanel title="d"><View>' + "<Layout>" * layouts + "</Layout>" * layouts + "</View></NexusPanel>"

    assert parse_nxml(nested(MAX_DEPTH)).title == "d"
    assert refusal(nested(MAX_DEPTH + 1)).codes == ["TOO_DEEP"]


def test_entity_expansion_never_happens() -> None:
    source = (CORPUS / "billion_laughs.nxml").read_text()
    started = time.perf_counter()
    assert refusal(source).codes == ["FORBIDDEN_XML"]
    assert time.perf_counter() - started < 0.5


# ----------------------------------------------------------------------------- properties


def sample_texts() -> list[str]:
    return [path.read_text() for path in sorted(SAMPLES.glob("*.nxml"))]


def outcome_is_clean(source: str) -> None:
    try:
        parse_nxml(source)
    except NXMLValidationError as exc:
        for error in exc.errors:
            assert error.code != INTERNAL_ERROR, error
            assert error.line >= 1 and error.column >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_arbitrary_text_only_raises_validation_errors(source: str) -> None:
    outcome_is_clean(source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_validation_errors(source: bytes) -> None:
    outcome_is_clean(source)  # type: ignore[arg-type]


_SIGNIFICANT = st.sampled_from(
    [
        "<",
        ">",
        "/",
        "&",
        ";",
        '"',
        "'",
        "=",
        "{",
        "}",
        "$",
        "$state.",
        "$scope.",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&lt;",
        "<Layout>",
        "</Layout>",
        '<Iterate as="x" items="{$state.todos}">',
        "</Iterate>",
        "\n",
        " ",
        "\x00",
        "\ud800",
        "é",
        "🙂",
        "(",
        ")",
        "[",
        "]",
        "`",
        "\\",
        "<!DOCTYPE x>",
        "&x;",
    ]
)


@st.composite
def mutated_samples(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(sample_texts()))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            text = text[:position] + draw(_SIGNIFICANT | st.text(max_size=8)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(min_value=1, max_value=40)) :]
        elif action == "replace":
            text = text[:position] + draw(_SIGNIFICANT) + text[position + 1 :]
        else:
            end = min(len(text), position + draw(st.integers(min_value=1, max_value=200)))
            text = text[:end] + text[position:end] + text[end:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_samples_only_raise_validation_errors(source: str) -> None:
    outcome_is_clean(source)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_samples_with_a_checker_only_raise_validation_errors(source: str) -> None:
    def checker(code: str) -> dict[str, object] | None:
        if "@" in code or len(code) % 7 == 0:
            return {"code": "COMPILATION_ERROR", "message": "x", "location": {"line": 99, "column": 99}}
        return None

    try:
        parse_nxml(source, syntax_checker=checker)
    except NXMLValidationError as exc:
        assert all(error.code != INTERNAL_ERROR and error.line >= 1 for error in exc.errors)
