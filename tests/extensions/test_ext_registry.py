"""ExtensionRegistry: lookup, errors, metrics, denial hook, lifecycle, loading from settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from runtime.extensions import (
    DEFAULT_EXTENSION_PATHS,
    Denial,
    Extension,
    ExtensionConfigError,
    ExtensionDenied,
    ExtensionError,
    ExtensionRegistry,
)
from runtime.extensions.http import HttpExtension


class Echo(Extension):
    name = "test.echo"
    methods = frozenset({"say", "deny", "fail", "crash", "hang"})

    def __init__(self, log: list[str] | None = None, fail_start: bool = False, fail_stop: bool = False) -> None:
        self.log = log if log is not None else []
        self.fail_start = fail_start
        self.fail_stop = fail_stop

    async def call(self, method: str, args: list[Any], panel_config: dict[str, Any]) -> Any:
        if method == "say":
            return {"args": args, "config": panel_config}
        if method == "deny":
            raise ExtensionDenied("not for you")
        if method == "fail":
            raise ExtensionError("it broke")
        if method == "hang":
            await asyncio.sleep(30)
        raise RuntimeError("bug inside the extension")

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("cannot stop")


class Other(Echo):
    name = "test.other"


async def test_call_passes_args_and_config():
    registry = ExtensionRegistry([Echo()])
    value = await registry.call("test.echo", "say", [1, "a"], {"baseURL": "http://x"})
    assert value == {"args": [1, "a"], "config": {"baseURL": "http://x"}}
    assert await registry.call("test.echo", "say", (), None) == {"args": [], "config": {}}


async def test_unknown_extension(ext_calls):
    before = ext_calls("unknown", "unknown", "not_found")
    with pytest.raises(ExtensionError) as info:
        await ExtensionRegistry([Echo()]).call("nexus.nope", "get", [], {})
    assert str(info.value) == "Extension 'nexus.nope' not found"
    assert ext_calls("unknown", "unknown", "not_found") == before + 1


async def test_unknown_method_lists_the_available_ones(ext_calls):
    before = ext_calls("test.echo", "unknown", "not_found")
    with pytest.raises(ExtensionError) as info:
        await ExtensionRegistry([Echo()]).call("test.echo", "explode", [], {})
    assert str(info.value) == (
        "Extension 'test.echo' has no method 'explode' (available: crash, deny, fail, hang, say)"
    )
    assert ext_calls("test.echo", "unknown", "not_found") == before + 1


async def test_long_unknown_names_are_shortened_in_messages():
    with pytest.raises(ExtensionError) as info:
        await ExtensionRegistry([Echo()]).call("test.echo", "m" * 5000, [], {})
    assert len(str(info.value)) < 200


async def test_args_must_be_a_list():
    with pytest.raises(ExtensionError, match="must be a list"):
        await ExtensionRegistry([Echo()]).call("test.echo", "say", {"a": 1}, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "status", "error"),
    [
        ("say", "success", None),
        ("fail", "error", "it broke"),
        ("crash", "error", "Extension 'test.echo' failed in 'crash': internal error"),
        ("deny", "denied", "not for you"),
    ],
)
async def test_every_call_is_counted(ext_calls, method, status, error):
    registry = ExtensionRegistry([Echo()])
    before = ext_calls("test.echo", method, status)
    if error is None:
        await registry.call("test.echo", method, [], {})
    else:
        with pytest.raises(ExtensionError) as info:
            await registry.call("test.echo", method, [], {})
        assert str(info.value) == error
    assert ext_calls("test.echo", method, status) == before + 1


async def test_cancelled_calls_are_counted_and_propagate(ext_calls):
    registry = ExtensionRegistry([Echo()])
    before = ext_calls("test.echo", "hang", "cancelled")
    task = asyncio.create_task(registry.call("test.echo", "hang", [], {}))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ext_calls("test.echo", "hang", "cancelled") == before + 1


async def test_denial_hook_receives_the_details():
    seen: list[Denial] = []
    registry = ExtensionRegistry([Echo()], on_denied=seen.append)
    with pytest.raises(ExtensionDenied):
        await registry.call("test.echo", "deny", [], {"baseURL": "b"}, context="panel-7")
    assert seen == [Denial("test.echo", "deny", "not for you", {"baseURL": "b"}, "panel-7")]
    await registry.call("test.echo", "say", [], {})
    with pytest.raises(ExtensionError):
        await registry.call("test.echo", "fail", [], {})
    assert len(seen) == 1  # only denials are reported


async def test_async_denial_hook_is_awaited_and_its_failure_does_not_mask_the_denial(caplog):
    seen: list[str] = []

    async def record(denial: Denial) -> None:
        seen.append(denial.reason)
        raise RuntimeError("audit table missing")

    registry = ExtensionRegistry([Echo()])
    registry.on_denied = record
    with caplog.at_level(logging.ERROR), pytest.raises(ExtensionDenied, match="not for you"):
        await registry.call("test.echo", "deny", [], {})
    assert seen == ["not for you"]
    assert "Denial hook failed" in caplog.text


async def test_start_and_stop_in_order():
    log: list[str] = []
    registry = ExtensionRegistry([Echo(log), Other(log)])
    await registry.start()
    await registry.start()
    await registry.stop()
    await registry.stop()
    assert log == ["start test.echo", "start test.other", "stop test.other", "stop test.echo"]


async def test_failed_start_stops_what_was_started():
    log: list[str] = []
    registry = ExtensionRegistry([Echo(log), Other(log, fail_start=True)])
    with pytest.raises(RuntimeError, match="cannot start"):
        await registry.start()
    assert log == ["start test.echo", "stop test.echo"]


async def test_failing_stop_is_logged_and_the_rest_still_stop(caplog):
    log: list[str] = []
    registry = ExtensionRegistry([Echo(log), Other(log, fail_stop=True)])
    await registry.start()
    with caplog.at_level(logging.ERROR):
        await registry.stop()
    assert log[-2:] == ["stop test.other", "stop test.echo"]
    assert "test.other failed to stop" in caplog.text


def test_get_and_names():
    echo, other = Echo(), Other()
    registry = ExtensionRegistry([other, echo])
    assert registry.names() == ["test.echo", "test.other"]
    assert registry.get("test.echo") is echo
    assert registry.get("missing") is None


def test_duplicate_names_are_refused():
    with pytest.raises(ExtensionConfigError, match="registered twice"):
        ExtensionRegistry([Echo(), Echo()])


def test_extensions_must_declare_name_and_methods():
    class Nameless(Echo):
        name = ""

    class NoMethods(Echo):
        methods = frozenset()

    with pytest.raises(ExtensionConfigError, match="has no name"):
        ExtensionRegistry([Nameless()])
    with pytest.raises(ExtensionConfigError, match="non-empty frozenset"):
        ExtensionRegistry([NoMethods()])


def test_from_settings_builds_the_default_extensions():
    registry = ExtensionRegistry.from_settings(
        DEFAULT_EXTENSION_PATHS, {"HTTP_MAX_CONCURRENT": "4", "HTTP_ALLOWED_DOMAINS": "api.example.com"}
    )
    assert registry.names() == ["nexus.http", "nexus.timer"]
    http = registry.get("nexus.http")
    assert isinstance(http, HttpExtension)
    assert http.max_concurrent == 4
    assert http.policy.allowed_domains == ("api.example.com",)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("HttpExtension", "must be 'package.module.ClassName'"),
        ("no_such_module_xyz.Thing", "Cannot load extension 'no_such_module_xyz.Thing'"),
        ("runtime.extensions.http.Missing", "Cannot load extension 'runtime.extensions.http.Missing'"),
        ("runtime.extensions.registry.ExtensionError", "is not a subclass"),
    ],
)
def test_from_settings_bad_paths(path, message):
    with pytest.raises(ExtensionConfigError, match=message):
        ExtensionRegistry.from_settings([path], {})


def test_from_settings_bad_values_name_the_extension_and_key():
    with pytest.raises(ExtensionConfigError) as info:
        ExtensionRegistry.from_settings(DEFAULT_EXTENSION_PATHS, {"HTTP_TIMEOUT": "0"})
    assert "runtime.extensions.http.HttpExtension" in str(info.value)
    assert "HTTP_TIMEOUT" in str(info.value)
