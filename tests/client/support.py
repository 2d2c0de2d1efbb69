"""Helpers for the browser client tests: paths, the Node evaluator runner (no Django needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO_ROOT / "workspaces" / "static" / "workspaces"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS_DIR = REPO_ROOT / "tests" / "artifacts"
EVAL_RUNNER = Path(__file__).resolve().parent / "eval_runner.js"


def node_binary() -> str:
    found = shutil.which("node")
    if not found:
        pytest.fail("Node.js is required to test the client evaluator (install the 'nodejs' package)")
    return found


def run_evaluator_cases(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Evaluate a batch of cases with evaluator.js under Node; returns the runner's report."""
    payload = json.dumps({"module": str(STATIC_DIR / "evaluator.js"), "cases": cases})
    proc = subprocess.run(
        [node_binary(), str(EVAL_RUNNER)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"node evaluator runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def load_fixture_panel(name: str) -> dict[str, Any]:
    panel: dict[str, Any] = json.loads((FIXTURES_DIR / f"{name}.json").read_text())
    return panel
