"""Print the requirement lines declared in pyproject.toml, one per line.

The container build and the image-recipe test both install from this output, so the
image gets exactly the dependencies the project declares (and, with ``--extra``, the
optional groups such as ``dev``), without installing the project itself: the service
runs from its source tree in /app.

Usage: python deploy/pyproject_requirements.py [--extra NAME ...] [PYPROJECT]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def read_requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Runtime dependencies followed by those of each requested extra, without repeats."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    optional = project.get("optional-dependencies", {})
    unknown = [name for name in extras if name not in optional]
    if unknown:
        known = ", ".join(sorted(optional)) or "none"
        raise SystemExit(f"{pyproject}: unknown extra {', '.join(unknown)} (declared: {known})")
    lines: list[str] = []
    for requirement in [*project.get("dependencies", []), *(r for name in extras for r in optional[name])]:
        if requirement not in lines:
            lines.append(requirement)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("pyproject", nargs="?", default="pyproject.toml", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="optional dependency group to add")
    args = parser.parse_args(argv)
    if not args.pyproject.is_file():
        parser.error(f"{args.pyproject} does not exist")
    sys.stdout.write("".join(f"{line}\n" for line in read_requirements(args.pyproject, args.extra)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
