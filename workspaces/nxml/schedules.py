"""``<Schedule>``: a tool that runs on its own, every interval or on a five-field cron expression.

The checks here are pure (no Django): the validator hands each ``<Schedule>`` element over
once the panel's tools are known, and gets back the ``ScheduleDef`` or located errors.
"""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter

from . import errors as codes
from .schema import TOOL_NAME
from .tree import ArgDef, PanelDefinition, ScheduleDef, ToolDef

if TYPE_CHECKING:
    from .validator import Validator
    from .xmlreader import RawElement

MISSED_POLICIES = ("once", "skip")
DEFAULT_MIN_INTERVAL_S = 10
_EVERY = re.compile(r"^(?:\d+[smhd])+$")
_EVERY_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_INTERVAL_S = 366 * 86400
# Gaps of a cron expression looked at to find its shortest interval.
CRON_GAPS_CHECKED = 60


class ScheduleError(ValueError):
    """A value of a <Schedule> that does not work; ``code`` is the NXML error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_every(text: str) -> int:
    """Seconds of an interval such as ``30s``, ``5m``, ``1h30m`` or ``1d``."""
    compact = text.strip().lower()
    if not _EVERY.match(compact):
        raise ScheduleError(
            codes.INVALID_SCHEDULE,
            f"every={text[:40]!r} is not an interval; write a number and a unit (s, m, h, d), e.g. 30s, 5m or 1h30m",
        )
    seconds = sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _EVERY_PART.findall(compact))
    if seconds < 1 or seconds > MAX_INTERVAL_S:
        raise ScheduleError(codes.INVALID_SCHEDULE, f"every={text!r} must be from 1s to 366d")
    return seconds


def check_cron(expression: str) -> str:
    """The expression with single spaces, when it is a valid five-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            codes.INVALID_SCHEDULE,
            f"cron={expression[:60]!r} has {len(fields)} field(s); write five: minute hour day-of-month month "
            "day-of-week, e.g. */5 * * * *",
        )
    normal = " ".join(fields)
    if not croniter.is_valid(normal):
        raise ScheduleError(codes.INVALID_SCHEDULE, f"cron={normal!r} is not a valid cron expression")
    return normal


def cron_shortest_gap(expression: str, zone: str) -> float:
    """The smallest number of seconds between two of the expression's next fire times."""
    iterator = croniter(expression, datetime.now(zoneinfo.ZoneInfo(zone)))
    previous = iterator.get_next(datetime)
    shortest = float("inf")
    for _ in range(CRON_GAPS_CHECKED):
        following = iterator.get_next(datetime)
        shortest = min(shortest, (following - previous).total_seconds())
        previous = following
    return shortest


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_timezone(name: str) -> str:
    if name not in _zones():
        raise ScheduleError(
            codes.UNKNOWN_TIMEZONE,
            f"timezone {name[:64]!r} is not an IANA time zone name (for example UTC, Europe/Paris, America/New_York)",
        )
    return name


def argument_problems(tool: ToolDef, args: Any) -> list[str]:
    """What is wrong with ``args`` for ``tool`` (defaults of missing arguments apply when it runs)."""
    if not isinstance(args, dict):
        return ["args must be a JSON object"]
    declared: dict[str, ArgDef] = {arg.name: arg for arg in tool.args}
    problems = [f"unknown argument '{name}'" for name in args if name not in declared]
    for name, arg in declared.items():
        if name in args and not _matches(arg.type, args[name]):
            problems.append(f"argument '{name}' must be a {arg.type}")
        elif name not in args and arg.required:
            problems.append(f"missing required argument '{name}'")
    return problems


def _matches(type_name: str, value: Any) -> bool:
    kinds: dict[str, Any] = {"string": str, "boolean": bool, "list": list, "object": dict}
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kinds.get(type_name, ()))


def next_fire_time(schedule: ScheduleDef, after: datetime) -> datetime:
    """The first time the schedule fires strictly after ``after`` (an aware datetime), in UTC."""
    if schedule.interval is not None:
        return (after + timedelta(seconds=schedule.interval)).astimezone(UTC)
    local = after.astimezone(zoneinfo.ZoneInfo(schedule.timezone))
    fired: datetime = croniter(schedule.cron, local).get_next(datetime)
    return fired.astimezone(UTC)


class ScheduleBuilder:
    """Checks the <Schedule> elements of one document against its tools."""

    def __init__(self, validator: Validator, definition: PanelDefinition, min_interval_s: float) -> None:
        self.validator = validator
        self.definition = definition
        self.min_interval_s = min_interval_s
        self.names: dict[str, Any] = {}

    def build(self, elements: list[RawElement]) -> list[ScheduleDef]:
        schedules = []
        for element in elements:
            schedule = self.build_one(element)
            if schedule is not None:
                schedules.append(schedule)
        return schedules

    def fail(self, element: RawElement, attribute: str | None, error: ScheduleError) -> None:
        at = self.validator.at_value(element, attribute) if attribute else self.validator.at_element(element)
        self.validator.report(error.code, f"<Schedule>: {error.message}", at)

    def build_one(self, element: RawElement) -> ScheduleDef | None:
        v = self.validator
        v.check_element(element)
        attributes = element.attributes
        tool_name = attributes.get("tool")
        tool = self.check_tool(element, tool_name)
        name = self.check_name(element, attributes.get("name", tool_name))
        timing = self.check_timing(element)
        args = self.check_args(element, tool)
        enabled = v.check_boolean_literal(element, "enabled")
        missed = attributes.get("missed", "once")
        if missed not in MISSED_POLICIES:
            v.report(codes.INVALID_VALUE, f"<Schedule> missed must be once or skip, not {missed[:20]!r}",
                     v.at_value(element, "missed"))
            return None
        if tool is None or name is None or timing is None or args is None:
            return None
        every, interval, cron, zone = timing
        return ScheduleDef(name=name, tool=tool.name, every=every, interval=interval, cron=cron, timezone=zone,
                           args=args, enabled=enabled is not False, missed=missed)

    def check_tool(self, element: RawElement, tool_name: str | None) -> ToolDef | None:
        if tool_name is None:
            return None  # check_element reported the missing attribute
        tool = self.definition.tool(tool_name)
        if tool is None:
            known = ", ".join(sorted(t.name for t in self.definition.tools)) or "none"
            self.fail(element, "tool", ScheduleError(codes.UNKNOWN_TOOL, f"tool {tool_name[:64]!r} names no "
                                                     f"<Tool> of this panel (tools: {known})"))
        return tool

    def check_name(self, element: RawElement, name: str | None) -> str | None:
        if name is None:
            return None
        attribute = "name" if "name" in element.attributes else "tool"
        if not TOOL_NAME.match(name) or len(name) > 128:
            self.fail(element, attribute, ScheduleError(codes.INVALID_NAME, f"name {name[:64]!r} is not a valid "
                                                        "name (letters, digits, '_', '$' or '-')"))
            return None
        if name in self.names:
            hint = "" if "name" in element.attributes else "; give each schedule of the same tool a name"
            self.fail(element, attribute, ScheduleError(codes.DUPLICATE_NAME,
                                                        f"a schedule named {name!r} already exists{hint}"))
            return None
        self.names[name] = element
        return name

    def check_timing(self, element: RawElement) -> tuple[str, int | None, str, str] | None:
        attributes = element.attributes
        every, cron = attributes.get("every"), attributes.get("cron")
        if (every is None) == (cron is None):
            self.fail(element, None, ScheduleError(codes.INVALID_SCHEDULE, "give exactly one of every (an interval "
                                                   "such as 5m) or cron (five fields such as */5 * * * *)"))
            return None
        try:
            zone = check_timezone(attributes.get("timezone", "UTC"))
        except ScheduleError as error:
            self.fail(element, "timezone", error)
            return None
        attribute = "every" if every is not None else "cron"
        try:
            if every is not None:
                interval: int | None = parse_every(every)
                shortest, expression = float(interval or 0), ""
            else:
                interval, expression = None, check_cron(cron or "")
                shortest = cron_shortest_gap(expression, zone)
        except ScheduleError as error:
            self.fail(element, attribute, error)
            return None
        if shortest < self.min_interval_s:
            self.fail(element, attribute, ScheduleError(
                codes.INTERVAL_TOO_SHORT,
                f"{attribute} would fire every {shortest:g}s, more often than this server allows "
                f"(SCHEDULE_MIN_INTERVAL={self.min_interval_s:g}s); use a longer interval",
            ))
            return None
        return (every or "").strip(), interval, expression, zone

    def check_args(self, element: RawElement, tool: ToolDef | None) -> dict[str, Any] | None:
        raw = element.attributes.get("args", "{}")
        try:
            args = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            self.fail(element, "args", ScheduleError(codes.INVALID_ARGS, f"args is not JSON: {exc}"))
            return None
        if tool is None:
            return args if isinstance(args, dict) else None
        problems = argument_problems(tool, args)
        if problems:
            message = f"args for tool {tool.name!r}: " + "; ".join(problems)
            self.fail(element, "args" if "args" in element.attributes else None,
                      ScheduleError(codes.INVALID_ARGS, message))
            return None
        assert isinstance(args, dict)
        return args
