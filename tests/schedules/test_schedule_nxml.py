"""<Schedule> in NXML: what it parses to, and a located error for each way it can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workspaces.nxml import NXMLValidationError, PanelDefinition, parse_nxml, validate_nxml
from workspaces.nxml.schedules import next_fire_time, parse_every
from workspaces.nxml.tree import ScheduleDef

HEAD = """<NexusPanel id="s" title="S">
  <Data><State name="n" type="number" /></Data>
  <Logic>
    <Tool name="inc"><Arg name="by" type="number" required="true" /><Arg name="note" type="string" />
      <Handler>$state.n += $args.by;</Handler></Tool>
    <Tool name="ping"><Handler>$state.n += 1;</Handler></Tool>
"""
TAIL = """  </Logic>
</NexusPanel>"""
SCHEDULE_LINE = 7  # the line of the first <Schedule> after HEAD


def panel(*schedules: str) -> str:
    return HEAD + "".join(f"    {line}\n" for line in schedules) + TAIL


def errors(*schedules: str, min_interval: float = 10) -> list[tuple[str, int, int]]:
    try:
        parse_nxml(panel(*schedules), min_schedule_interval_s=min_interval)
    except NXMLValidationError as exc:
        return [(error.code, error.line, error.column) for error in exc.errors]
    return []


def test_a_valid_schedule_is_parsed_and_survives_storage() -> None:
    definition = parse_nxml(panel(
        """<Schedule tool="ping" every="1h30m" />""",
        """<Schedule name="nightly" tool="inc" cron="0  3 * * *" timezone="Europe/Paris" args='{"by": 2}' """
        """enabled="false" missed="skip" />""",
    ))
    ping, nightly = definition.schedules
    assert (ping.name, ping.tool, ping.interval, ping.expression, ping.missed, ping.enabled) == (
        "ping", "ping", 5400, "every 1h30m", "once", True)
    assert (nightly.cron, nightly.timezone, nightly.args, nightly.enabled, nightly.missed) == (
        "0 3 * * *", "Europe/Paris", {"by": 2}, False, "skip")
    assert PanelDefinition.from_dict(definition.to_dict()).schedules == definition.schedules


def test_a_tool_that_does_not_exist() -> None:
    assert errors("""<Schedule tool="nope" every="1m" />""") == [("UNKNOWN_TOOL", SCHEDULE_LINE, 21)]


def test_missing_required_args_and_args_that_do_not_fit() -> None:
    assert errors(
        """<Schedule tool="inc" every="1m" />""",
        """<Schedule name="b" tool="inc" every="1m" args='{"by": "two"}' />""",
        """<Schedule name="c" tool="inc" every="1m" args='{"by": 1, "extra": true}' />""",
        """<Schedule name="d" tool="inc" every="1m" args='[1]' />""",
        """<Schedule name="e" tool="inc" every="1m" args='{by: 1}' />""",
    ) == [("INVALID_ARGS", SCHEDULE_LINE, 5)] + [("INVALID_ARGS", SCHEDULE_LINE + i, 52) for i in range(1, 5)]


def test_the_message_says_which_argument() -> None:
    problems = validate_nxml(panel("""<Schedule tool="inc" every="1m" args='{"note": 3}' />"""))
    assert [p.code for p in problems] == ["INVALID_ARGS"]
    assert "missing required argument 'by'" in problems[0].message
    assert "argument 'note' must be a string" in problems[0].message


@pytest.mark.parametrize("attribute", [
    'every="5 minutes"', 'every="0s"', 'every="10ms"', 'cron="* * * *"', 'cron="61 * * * *"',
    'cron="*/5 * * * * *"', 'every="1m" cron="* * * * *"', "",
])
def test_bad_expressions(attribute: str) -> None:
    found = errors(f"""<Schedule tool="ping" {attribute} />""")
    assert [code for code, _, _ in found] == ["INVALID_SCHEDULE"]
    assert found[0][1] == SCHEDULE_LINE


def test_an_interval_under_the_minimum() -> None:
    assert errors("""<Schedule tool="ping" every="5s" />""") == [("INTERVAL_TOO_SHORT", SCHEDULE_LINE, 34)]
    assert errors("""<Schedule tool="ping" every="5s" />""", min_interval=1) == []
    assert errors("""<Schedule tool="ping" cron="* * * * *" />""", min_interval=120) == [
        ("INTERVAL_TOO_SHORT", SCHEDULE_LINE, 33)]
    message = validate_nxml(panel("""<Schedule tool="ping" every="5s" />"""))[0].message
    assert "SCHEDULE_MIN_INTERVAL=10s" in message


def test_an_unknown_time_zone() -> None:
    assert errors("""<Schedule tool="ping" cron="0 9 * * *" timezone="Mars/Olympus" />""") == [
        ("UNKNOWN_TIMEZONE", SCHEDULE_LINE, 54)]
    assert errors("""<Schedule tool="ping" cron="0 9 * * *" timezone="America/New_York" />""") == []


def test_duplicate_names_explicit_or_from_the_tool() -> None:
    assert errors(
        """<Schedule tool="ping" every="1m" />""",
        """<Schedule tool="ping" every="2m" />""",
        """<Schedule name="x" tool="ping" every="1m" />""",
        """<Schedule name="x" tool="inc" every="1m" args='{"by": 1}' />""",
    ) == [("DUPLICATE_NAME", SCHEDULE_LINE + 1, 21), ("DUPLICATE_NAME", SCHEDULE_LINE + 3, 21)]


def test_bad_enabled_and_missed_values() -> None:
    assert [code for code, _, _ in errors(
        """<Schedule tool="ping" every="1m" enabled="yes" />""",
        """<Schedule name="b" tool="ping" every="1m" missed="all" />""",
    )] == ["INVALID_VALUE", "INVALID_VALUE"]


def test_a_schedule_belongs_in_logic() -> None:
    source = panel().replace("<Data>", """<Data><Schedule tool="ping" every="1m" />""")
    assert [error.code for error in validate_nxml(source)] == ["MISPLACED_ELEMENT"]


def test_intervals_and_fire_times() -> None:
    assert [parse_every(text) for text in ("30s", "5m", "1h30m", "1d", "2M")] == [30, 300, 5400, 86400, 120]
    noon = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    every = ScheduleDef(name="a", tool="t", every="5m", interval=300)
    assert next_fire_time(every, noon) == datetime(2026, 3, 28, 12, 5, tzinfo=UTC)
    # 09:00 in Paris is 08:00 UTC before the switch to summer time and 07:00 UTC after it.
    paris = ScheduleDef(name="b", tool="t", cron="0 9 * * *", timezone="Europe/Paris")
    assert next_fire_time(paris, noon) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert next_fire_time(paris, datetime(2026, 3, 27, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
