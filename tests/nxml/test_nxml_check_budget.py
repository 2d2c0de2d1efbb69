"""One validation spends a bounded time on syntax checks, then refuses with a located error."""

from __future__ import annotations

import time
from typing import Any

import pytest

from workspaces.nxml import NXMLValidationError, parse_nxml
from workspaces.nxml.validator import CHECK_BUDGET_S


def tools(count: int) -> str:
    logic = "".join(f'<Tool name="t{index}"><Handler>return {index};</Handler></Tool>\n' for index in range(count))
    return f'<NexusPanel id="p" title="P">\n<Logic>\n{logic}</Logic>\n<View></View>\n</NexusPanel>\n'


@pytest.mark.slow
def test_checks_past_the_budget_refuse_the_document() -> None:
    checked: list[str] = []

    def slow_checker(code: str) -> dict[str, Any] | None:
        checked.append(code)
        time.sleep(CHECK_BUDGET_S / 3)
        return None

    source = tools(8)
    with pytest.raises(NXMLValidationError) as caught:
        parse_nxml(source, syntax_checker=slow_checker)
    errors = caught.value.errors
    assert [error.code for error in errors] == ["HANDLER_TOO_EXPENSIVE"]
    assert "too expensive to check" in errors[0].message
    # Located at the first handler left unchecked; no handler after it was checked.
    unchecked = len(checked)
    assert 3 <= unchecked < 8
    assert errors[0].line == source.splitlines().index(
        f'<Tool name="t{unchecked}"><Handler>return {unchecked};</Handler></Tool>'
    ) + 1


def test_a_check_that_hits_a_limit_is_too_expensive() -> None:
    def limited(code: str) -> dict[str, Any] | None:
        return {"code": "TIMEOUT", "message": "the handler ran past its limit of 2000 ms"}

    with pytest.raises(NXMLValidationError) as caught:
        parse_nxml(tools(2), syntax_checker=limited)
    errors = caught.value.errors
    assert [error.code for error in errors] == ["HANDLER_TOO_EXPENSIVE"] * 2
    assert "ran past its limit of 2000 ms" in errors[0].message
