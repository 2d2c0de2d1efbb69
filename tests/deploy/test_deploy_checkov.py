"""checkov on the rendered prod overlay and on the Dockerfile: no finding beyond the accepted ones.

The accepted findings are the table in docs/deployment.md ("Accepted checkov findings");
the test fails both on a new finding and on an accepted one that no longer occurs, so the
table stays true. checkov runs from its own virtualenv (bash .ci/run installs it), with
--skip-download so that it never contacts its vendor's API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DOCKERFILE, OVERLAYS, REPO, kustomize_command

GUIDE = REPO / "docs" / "deployment.md"
DEFAULT_CHECKOV = Path("/opt/nexus-tools/checkov/bin/checkov")
ACCEPTED_ROW = re.compile(r"^\| `(CKV_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$")


def checkov() -> str:
    candidates = [os.environ.get("NEXUS_CHECKOV"), shutil.which("checkov"), str(DEFAULT_CHECKOV)]
    found = next((path for path in candidates if path and Path(path).is_file()), None)
    assert found, f"checkov is missing: bash .ci/run installs it into {DEFAULT_CHECKOV.parents[1]}"
    return found


def failed_checks(path: Path, framework: str) -> set[tuple[str, str]]:
    completed = subprocess.run(
        [checkov(), "--file", str(path), "--framework", framework, "--output", "json", "--skip-download",
         "--compact"],
        capture_output=True, text=True, timeout=300, check=False, cwd=path.parent,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["passed"] > 50, "checkov ran no checks"
    return {(item["check_id"], item["resource"].rsplit("/", 1)[-1]) for item in report["results"]["failed_checks"]}


def accepted_findings() -> dict[tuple[str, str], str]:
    accepted: dict[tuple[str, str], str] = {}
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        match = ACCEPTED_ROW.match(line.strip())
        if match:
            check, resources, reason = (part.strip() for part in match.groups())
            for resource in resources.split(","):
                accepted[(check, resource.strip().strip("`"))] = reason
    return accepted


@pytest.fixture(scope="module")
def prod_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    completed = subprocess.run([*kustomize_command(), str(OVERLAYS["prod"])], capture_output=True, text=True,
                               timeout=120, check=True)
    path = tmp_path_factory.mktemp("checkov") / "prod.yaml"
    path.write_text(completed.stdout)
    return path


def test_accepted_findings_carry_a_reason() -> None:
    accepted = accepted_findings()
    assert accepted, "docs/deployment.md lists the accepted checkov findings"
    assert all(len(reason) > 30 for reason in accepted.values())


def test_prod_overlay_passes_checkov_but_for_the_accepted_findings(prod_manifest: Path) -> None:
    found = failed_checks(prod_manifest, "kubernetes")
    accepted = {key for key in accepted_findings() if not key[1].startswith("Dockerfile")}
    assert found - accepted == set(), f"new checkov findings: {sorted(found - accepted)}"
    assert accepted - found == set(), f"accepted findings that no longer occur: {sorted(accepted - found)}"


def test_dockerfile_passes_checkov_but_for_the_accepted_findings() -> None:
    found = failed_checks(DOCKERFILE, "dockerfile")
    accepted = {key for key in accepted_findings() if key[1].startswith("Dockerfile")}
    assert found == accepted, f"findings {sorted(found)}, accepted {sorted(accepted)}"


def test_checkov_would_catch_a_weaker_manifest(prod_manifest: Path, tmp_path: Path) -> None:
    weaker = tmp_path / "weaker.yaml"
    weaker.write_text(prod_manifest.read_text().replace("readOnlyRootFilesystem: true",
                                                        "readOnlyRootFilesystem: false"))
    assert "CKV_K8S_22" in {check for check, _ in failed_checks(weaker, "kubernetes")}
