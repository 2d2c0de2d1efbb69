"""Benchmarks: every figure a median over many runs, judged against a baseline from the same run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def _cases() -> dict[str, Callable[[bool], dict[str, Any]]]:
    from workspaces.benchmarks import fairness, live, mcp_call, schedule_lag, throughput, waiting
    from workspaces.services.sandbox import runtime_benchmarks

    return {
        **runtime_benchmarks(),
        "ws.trigger": live.ws_trigger,
        "ws.throughput": live.ws_throughput,
        "ws.throughput_vs_handwritten": throughput.ws_throughput_vs_handwritten,
        "ws.fanout": live.ws_fanout,
        "ws.fairness": fairness.ws_fairness,
        "ws.waiting": waiting.ws_waiting,
        "rest.trigger": live.rest_trigger,
        "rest.create_panel": live.rest_create_panel,
        "mcp.call": mcp_call.mcp_call,
        "schedule.lag": schedule_lag.schedule_lag,
    }


def select(names: list[str], only: str | None) -> list[str]:
    if not only:
        return names
    wanted = [item.strip() for item in only.split(",") if item.strip()]
    chosen = [name for name in names if any(name == w or name.startswith(w.rstrip(".") + ".") for w in wanted)]
    if not chosen:
        raise CommandError(f"--only {only!r} matches no case; cases: {', '.join(names)}")
    return chosen


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(results: dict[str, dict[str, Any]]) -> str:
    header = ["case", "value", "unit", "baseline", "ratio", "target", "ok"]
    rows = [header] + [
        [name, *(_cell(result.get(key)) for key in header[1:])] if "skipped" not in result
        else [name, "skipped", "", "", "", "", result["skipped"]]
        for name, result in results.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Run Nexus benchmarks and print a table (or JSON with --json). Cases: runtime.execute, "
        "runtime.parallel, runtime.cold_start, runtime.instance_memory, runtime.switch, runtime.suspend_resume, "
        "ws.trigger, ws.throughput, ws.throughput_vs_handwritten, ws.fanout, ws.fairness, ws.waiting, rest.trigger, "
        "rest.create_panel, mcp.call, schedule.lag. Each "
        "compares with "
        "a baseline measured in the same run; server "
        "processes, a scratch database and (for ws.fanout, when REDIS_URL is unset) a private redis-server "
        "on loopback are started and cleaned up by the command. Needs the dev extra installed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", help="comma-separated case names or prefixes, e.g. 'runtime' or 'ws.trigger'")
        parser.add_argument("--json", action="store_true", help="print one JSON object: case -> figures")
        parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run of a minute or two")

    def handle(self, *args: Any, **options: Any) -> None:
        from tqdm import tqdm

        cases = _cases()
        names = select(list(cases), options["only"])
        results: dict[str, dict[str, Any]] = {}
        progress = tqdm(names, desc="nexus_bench", unit="case", file=self.stderr._out, leave=False)
        for name in progress:
            progress.set_postfix_str(name)
            started = time.monotonic()
            try:
                results[name] = cases[name](options["quick"])
            except Exception as exc:  # one broken case must not hide the others' figures
                results[name] = {"value": None, "unit": "", "error": f"{type(exc).__name__}: {exc}"}
            results[name]["seconds"] = round(time.monotonic() - started, 2)
        progress.close()
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2, sort_keys=True))
        else:
            self.stdout.write(table(results))
        failed = [name for name, result in results.items() if "error" in result]
        if failed:
            raise CommandError(f"benchmark case(s) failed to run: {', '.join(failed)}")
