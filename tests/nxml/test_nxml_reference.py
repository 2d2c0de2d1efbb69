"""docs/nxml.md documents every element, attribute and error code the schema defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workspaces.nxml import errors
from workspaces.nxml.schema import COMPONENTS, STRUCTURE

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "docs" / "nxml.md").read_text(encoding="utf-8")
SAMPLES = ROOT / "workspaces" / "fixtures" / "panels"
ELEMENTS = sorted(set(STRUCTURE) | set(COMPONENTS))


def attributes_of(tag: str) -> list[str]:
    if tag in COMPONENTS:
        return sorted(COMPONENTS[tag].attributes)
    return sorted(STRUCTURE[tag][0])


def section_of(tag: str) -> tuple[list[str], str]:
    """The elements a heading names (with `<tag>` among them) and the text up to the next heading."""
    heading = re.search(rf"^#{{2,3}} .*`<{tag}>`.*$", REFERENCE, re.MULTILINE)
    assert heading is not None, f"docs/nxml.md has no heading for <{tag}>"
    following = re.compile(r"^#{2,3} ", re.MULTILINE).search(REFERENCE, heading.end())
    named = re.findall(r"`<([A-Za-z]+)>`", heading.group())
    return named, REFERENCE[heading.end():following.start() if following else len(REFERENCE)]


@pytest.mark.parametrize("tag", ELEMENTS)
def test_every_element_has_a_section_with_each_attribute_and_an_example(tag: str) -> None:
    named, section = section_of(tag)
    rows = set(re.findall(r"^\| `([A-Za-z]+)` \|", section, re.MULTILINE))
    missing = [name for name in attributes_of(tag) if name not in rows]
    assert not missing, f"<{tag}> attributes without a row in docs/nxml.md: {missing}"
    undocumented = rows - {name for element in named for name in attributes_of(element)}
    assert not undocumented, f"docs/nxml.md documents attributes <{tag}> does not have: {undocumented}"
    if attributes_of(tag):
        assert re.search(r"^\| attribute.* \| type \| default \| meaning \|$", section, re.MULTILINE), (
            f"the table of <{tag}> needs type and default columns"
        )
    examples = re.findall(r"```xml\n(.*?)```", section, re.DOTALL)
    assert any(f"<{tag}" in example for example in examples), f"<{tag}> has no example in its section"


def test_every_nxml_error_code_is_explained() -> None:
    table = REFERENCE.split("## Errors", 1)[1]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE))
    assert listed == set(errors.ALL_CODES)


def test_the_handler_api_is_described() -> None:
    for name in ("$state", "$args", "$scope", "$emit", "$view", "$ext", "$log", "CDATA", "Computed"):
        assert name in REFERENCE, name


def test_samples_wrap_handlers_with_markup_characters_in_cdata() -> None:
    for path in SAMPLES.glob("*.nxml"):
        for body in re.findall(r"<Handler>(.*?)</Handler>", path.read_text(encoding="utf-8"), re.DOTALL):
            if "<![CDATA[" not in body:
                assert "&lt;" not in body and "&amp;" not in body, f"{path.name}: use CDATA, not entities"
