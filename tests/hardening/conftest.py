"""Hypothesis profiles for the hardening suites, shared fixtures, and the figures summary.

Profiles (pick with NEXUS_HYPOTHESIS_PROFILE; the suites apply them explicitly, so the
rest of the test tree keeps Hypothesis' defaults):

- ``hardening`` (default, CI): no deadline (the examples reach real servers and sandboxes),
  failing examples printed as reproducible blobs.
- ``hardening-quick``: a quarter of the examples, for a fast local run.
- ``hardening-deep``: four times the examples, for a long run before a release.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.hardening.support import FIGURES, PROFILE_SCALE
from tests.support.servers import Database, scratch_database

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]

settings.register_profile("hardening", deadline=None, suppress_health_check=_SLOW_OK, print_blob=True,
                          max_examples=50)
settings.register_profile("hardening-quick", parent=settings.get_profile("hardening"), max_examples=12)
settings.register_profile("hardening-deep", parent=settings.get_profile("hardening"), max_examples=200)
assert set(PROFILE_SCALE) == {"hardening", "hardening-quick", "hardening-deep"}


@pytest.fixture(scope="module")
def module_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    """A scratch database (SQLite file or a fresh PostgreSQL database) and a folder for logs."""
    tmp = tmp_path_factory.mktemp("hardening")
    with scratch_database(tmp) as database:
        yield tmp, database


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("hardening figures")
    for suite in sorted(FIGURES):
        figures = ", ".join(f"{name}={value}" for name, value in FIGURES[suite].items())
        terminalreporter.write_line(f"{suite}: {figures}")
