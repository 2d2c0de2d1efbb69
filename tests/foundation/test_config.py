"""Configuration: priority, parsing, and the start-up refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nexus.config import ConfigError, NexusConfig, load_config, setting_names
from tests.support.servers import ROOT

GOOD = {"JWT_SECRET": "s3cret", "SECRET_KEY": "k"}


def test_defaults_match_the_documented_table() -> None:
    config = load_config(GOOD)
    assert (config.HTTP_PORT, config.WS_PORT, config.HOST) == (3000, 3001, "0.0.0.0")
    assert config.AUTH_ENABLED is True
    assert config.JWT_ACCESS_TTL == 15 * 60
    assert config.CORS_ORIGINS == ("*",)
    assert config.BODY_LIMIT == 1024 * 1024
    # SANDBOX_MEMORY_BUDGET_MB 2048 / MEMORY_LIMIT_MB 32, outside a container with a memory limit
    uncapped = load_config({**GOOD, "CGROUP_MEMORY_MAX": "/nonexistent/memory.max"})
    assert (uncapped.MAX_INSTANCES, config.MIN_INSTANCES) == (64, 2)
    assert (config.MEMORY_LIMIT_MB, config.TIMEOUT_MS, config.MAX_HOST_CALLS) == (32, 5000, 1000)
    assert (config.CACHE_DIR, config.MAX_CACHE_SIZE_MB) == ("/tmp/nexus-cache", 64)
    assert (config.HTTP_MAX_CONCURRENT, config.HTTP_TIMEOUT, config.HTTP_ALLOWED_DOMAINS) == (10, 30000, ())
    assert config.MAX_PANELS == 10
    assert (config.LOG_LEVEL, config.LOG_PRETTY) == ("info", False)
    assert config.DATABASE_URL.startswith("sqlite:///")
    assert config.REDIS_URL == "" and not config.redis_enabled


def test_environment_wins_over_config_dir_which_wins_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "HTTP_PORT").write_text("4000\n")
    (tmp_path / "MAX_PANELS").write_text("20")
    (tmp_path / "..data").mkdir()  # what a mounted ConfigMap also contains
    config = load_config({**GOOD, "NEXUS_CONFIG_DIR": str(tmp_path), "HTTP_PORT": "5000"})
    assert config.HTTP_PORT == 5000  # environment
    assert config.MAX_PANELS == 20  # config directory
    assert config.TIMEOUT_MS == 5000  # default


def test_secrets_can_come_from_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "JWT_SECRET").write_text("from-file\n")
    config = load_config({"SECRET_KEY": "k", "NEXUS_CONFIG_DIR": str(tmp_path)})
    assert config.JWT_SECRET == "from-file"


@pytest.mark.parametrize(
    ("environ", "parsed"),
    [
        ({"AUTH_ENABLED": "false", "DEBUG": "true"}, {"AUTH_ENABLED": False}),
        ({"LOG_PRETTY": "yes"}, {"LOG_PRETTY": True}),
        ({"LOG_LEVEL": "WARNING"}, {"LOG_LEVEL": "warn"}),
        ({"JWT_ACCESS_TTL": "1h"}, {"JWT_ACCESS_TTL": 3600}),
        ({"JWT_ACCESS_TTL": "90"}, {"JWT_ACCESS_TTL": 90}),
        ({}, {"WS_MAX_CONNECTION_AGE": 3600}),
        ({"WS_MAX_CONNECTION_AGE": "15m"}, {"WS_MAX_CONNECTION_AGE": 900}),
        ({"WS_MAX_CONNECTION_AGE": "0"}, {"WS_MAX_CONNECTION_AGE": 0}),
        ({"BODY_LIMIT": "512kb"}, {"BODY_LIMIT": 512 * 1024}),
        ({"CORS_ORIGINS": "https://a.example, https://b.example"},
         {"CORS_ORIGINS": ("https://a.example", "https://b.example")}),
        ({"HTTP_ALLOWED_DOMAINS": "api.example.com,*.corp.example"},
         {"HTTP_ALLOWED_DOMAINS": ("api.example.com", "*.corp.example")}),
        ({"MIN_INSTANCES": "0", "MAX_INSTANCES": "1"}, {"MIN_INSTANCES": 0, "MAX_INSTANCES": 1}),
        ({"TIMEOUT_MS": "100"}, {"TIMEOUT_MS": 100}),
        ({"MEMORY_LIMIT_MB": "1"}, {"MEMORY_LIMIT_MB": 1}),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, {"REDIS_URL": "redis://127.0.0.1:6379/0"}),
        ({"AUTH_ENABLED": "false", "NEXUS_ALLOW_INSECURE": "1"}, {"AUTH_ENABLED": False}),
    ],
)
def test_good_values(environ: dict[str, str], parsed: dict[str, object]) -> None:
    config = load_config({**GOOD, **environ})
    for name, value in parsed.items():
        assert getattr(config, name) == value


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"HTTP_PORT": "70000"}, "HTTP_PORT=70000 is invalid: must be an integer from 1 to 65535"),
        ({"HTTP_PORT": "0"}, "HTTP_PORT=0 is invalid: must be an integer from 1 to 65535"),
        ({"WS_PORT": "http"}, "WS_PORT=http is invalid: must be an integer from 1 to 65535"),
        ({"MEMORY_LIMIT_MB": "0"}, "MEMORY_LIMIT_MB=0 is invalid: must be an integer from 1 to 4096"),
        ({"TIMEOUT_MS": "50"}, "TIMEOUT_MS=50 is invalid: must be an integer from 100 to 600000"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL=loud is invalid: must be one of debug, info, warn, error"),
        ({"MAX_INSTANCES": "0"}, "MAX_INSTANCES=0 is invalid"),
        ({"MIN_INSTANCES": "5", "MAX_INSTANCES": "2"}, "MIN_INSTANCES=5 is invalid: must be <= MAX_INSTANCES (2)"),
        ({"AUTH_ENABLED": "maybe"}, "AUTH_ENABLED=maybe is invalid: must be true or false"),
        ({"BODY_LIMIT": "huge"}, "BODY_LIMIT=huge is invalid"),
        ({"JWT_ACCESS_TTL": "0"}, "JWT_ACCESS_TTL=0 is invalid"),
        ({"WS_MAX_CONNECTION_AGE": "-5"}, "WS_MAX_CONNECTION_AGE=-5 is invalid: must be a duration such as 900"),
        ({"JWT_SECRET": ""}, "JWT_SECRET is missing: required when AUTH_ENABLED=true"),
        ({"AUTH_ENABLED": "false"}, "AUTH_ENABLED=false is refused"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is missing: required when DEBUG=false"),
        ({"NEXUS_CONFIG_DIR": "/nonexistent/nexus"}, "NEXUS_CONFIG_DIR=/nonexistent/nexus is invalid"),
    ],
)
def test_bad_values_name_the_variable_and_the_range(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({**GOOD, **environ})
    message = str(raised.value)
    assert needle in message
    assert "\n" not in message


def test_a_bad_value_in_the_config_dir_is_reported_too(tmp_path: Path) -> None:
    (tmp_path / "HTTP_PORT").write_text("99999")
    with pytest.raises(ConfigError, match="HTTP_PORT=99999 is invalid"):
        load_config({**GOOD, "NEXUS_CONFIG_DIR": str(tmp_path)})


def test_every_setting_is_documented() -> None:
    assert all(NexusConfig.__dataclass_fields__[name].metadata["doc"] for name in setting_names())


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"HTTP_PORT": "70000"}, "HTTP_PORT=70000 is invalid"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL=loud is invalid"),
        ({"JWT_SECRET": ""}, "JWT_SECRET is missing"),
        ({"AUTH_ENABLED": "false", "DEBUG": "false"}, "AUTH_ENABLED=false is refused"),
    ],
)
@pytest.mark.parametrize("command", [["manage.py", "check"], ["manage.py", "nexus_serve", "--port", "1"]])
def test_manage_and_the_server_refuse_to_start(environ: dict[str, str], needle: str, command: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "JWT_SECRET": "x", "SECRET_KEY": "y", **environ}
    done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"nexus: configuration error: {lines[0].split('error: ', 1)[1]}"]
    assert needle in lines[0]
