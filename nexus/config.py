"""Typed configuration: environment variables over a config directory over defaults.

The config directory (``NEXUS_CONFIG_DIR``) holds one file per key, the way Kubernetes
mounts a ConfigMap. Everything is parsed and validated once, at start-up, into a frozen
``NexusConfig``; an invalid value raises ``ConfigError`` with a one-line message naming
the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

LOG_LEVELS = ("debug", "info", "warn", "error")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


# The sandbox pool is sized by memory: at worst every instance grows to MEMORY_LIMIT_MB, so a
# budget of 2 GiB holds 64 instances of the default 32 MiB (idle, one keeps ~0.6 MiB resident).
DEFAULT_SANDBOX_MEMORY_BUDGET_MB = 2048
MAX_POOL_INSTANCES = 1000
# Without SANDBOX_MEMORY_BUDGET_MB, a container's memory limit (less this for the process
# itself: Django, the engine, the compiled guest module) caps the default budget.
PROCESS_RESERVE_MB = 256


class ConfigError(ValueError):
    """An invalid configuration value; the message is one line naming the variable."""


def _parse_int(raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(_range_text(minimum, maximum)) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(_range_text(minimum, maximum))
    return value


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"must be an integer from {minimum} to {maximum}"
    if minimum is not None:
        return f"must be an integer >= {minimum}"
    return "must be an integer"


def _parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be true or false")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_size(raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*", raw.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError("must be a size such as 512kb or 1mb (at least 1 byte)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2) or "b"]


def _parse_duration(raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", raw.lower())
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"] if match else 0
    if seconds < 1:
        raise ValueError("must be a duration such as 900, 30s, 15m or 1h (at least 1 second)")
    return int(seconds)


def _parse_duration_or_off(raw: str) -> int:
    """A duration, or 0 for "no limit"."""
    if raw.strip() == "0":
        return 0
    try:
        return _parse_duration(raw)
    except ValueError:
        raise ValueError("must be a duration such as 900, 30m or 1h, or 0 for no limit") from None


def _parse_rate(raw: str) -> str:
    """A DRF throttle rate such as 600/min: a count, a slash, and s, min, hour or day."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*", raw.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError("must be a rate such as 600/min (a count per s, min, hour or day)")
    return f"{int(match.group(1))}/{match.group(2)}"


def _parse_log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level == "warning":
        level = "warn"
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    return lambda raw: _parse_int(raw, minimum, maximum)


def _text(raw: str) -> str:
    return raw.strip()


def _setting(default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True)
class NexusConfig:
    HTTP_PORT: int = _setting(3000, _int(1, 65535), "HTTP (and WebSocket) port")
    WS_PORT: int = _setting(3001, _int(1, 65535), "second port that also serves WebSockets")
    HOST: str = _setting("0.0.0.0", _text, "address to bind")
    AUTH_ENABLED: bool = _setting(True, _parse_bool, "require JWT or session authentication")
    JWT_SECRET: str = _setting("", _text, "HMAC key for JWTs; required when auth is on")
    JWT_SECRET_PREVIOUS: tuple[str, ...] = _setting(
        (), _parse_list, "earlier JWT keys, comma separated: tokens they signed still verify"
    )
    JWT_ACCESS_TTL: int = _setting(900, _parse_duration, "access token lifetime (seconds, or 15m, 1h)")
    CORS_ORIGINS: tuple[str, ...] = _setting(("*",), _parse_list, "allowed origins, comma separated")
    BODY_LIMIT: int = _setting(1024**2, _parse_size, "largest request body and WebSocket frame")
    SANDBOX_MEMORY_BUDGET_MB: int = _setting(
        DEFAULT_SANDBOX_MEMORY_BUDGET_MB, _int(1, 4_096_000),
        "memory the sandbox pool may take at worst (MiB); sizes MAX_INSTANCES unless that is set",
    )
    MAX_INSTANCES: int = _setting(
        DEFAULT_SANDBOX_MEMORY_BUDGET_MB // 32, _int(1, MAX_POOL_INSTANCES),
        "largest sandbox pool (default: SANDBOX_MEMORY_BUDGET_MB / MEMORY_LIMIT_MB)",
    )
    MIN_INSTANCES: int = _setting(2, _int(0, 1000), "warm sandbox instances kept ready")
    MEMORY_LIMIT_MB: int = _setting(32, _int(1, 4096), "memory per sandbox instance (MiB)")
    TIMEOUT_MS: int = _setting(5000, _int(100, 600_000), "wall-clock limit per execution (ms)")
    MAX_HOST_CALLS: int = _setting(1000, _int(1, 1_000_000), "sandbox API calls per execution")
    CACHE_DIR: str = _setting("/tmp/nexus-cache", _text, "compiled WebAssembly module cache")
    MAX_CACHE_SIZE_MB: int = _setting(64, _int(1, 65536), "size bound of the module cache (MiB)")
    HTTP_MAX_CONCURRENT: int = _setting(10, _int(1, 10_000), "nexus.http calls in flight per process")
    HTTP_TIMEOUT: int = _setting(30000, _int(100, 600_000), "nexus.http timeout per call (ms)")
    HTTP_ALLOWED_DOMAINS: tuple[str, ...] = _setting((), _parse_list, "nexus.http allow-list")
    HTTP_ALLOWED_PRIVATE_HOSTS: tuple[str, ...] = _setting(
        (), _parse_list, "hosts nexus.http may reach on private or loopback addresses"
    )
    HTTP_MAX_BODY_BYTES: int = _setting(1024**2, _parse_size, "largest nexus.http request or response body")
    HTTP_MAX_REDIRECTS: int = _setting(5, _int(0, 50), "redirects nexus.http follows")
    MAX_PANELS: int = _setting(10, _int(1, 100_000), "panels per workspace")
    LOG_LEVEL: str = _setting("info", _parse_log_level, "debug, info, warn or error")
    LOG_PRETTY: bool = _setting(False, _parse_bool, "human-readable logs instead of JSON lines")
    DATABASE_URL: str = _setting(f"sqlite:///{BASE_DIR / 'db.sqlite3'}", _text, "database URL")
    DB_POOL_MIN_SIZE: int = _setting(2, _int(0, 1000), "PostgreSQL connections the pool keeps open")
    DB_POOL_MAX_SIZE: int = _setting(10, _int(1, 1000), "most PostgreSQL connections of this process")
    DB_POOL_TIMEOUT: int = _setting(
        2, _parse_duration, "how long a request waits for a pooled connection before answering 503"
    )
    REDIS_URL: str = _setting("", _text, "Redis for the channel layer; unset: in-memory layer")
    REDIS_PREFIX: str = _setting("nexus", _text, "key prefix in Redis, so deployments can share one server")
    SECRET_KEY: str = _setting("", _text, "Django secret key; required when DEBUG is off")
    SECRET_KEY_PREVIOUS: tuple[str, ...] = _setting(
        (), _parse_list, "earlier Django secret keys, comma separated (SECRET_KEY_FALLBACKS)"
    )
    METRICS_PORT: int = _setting(9100, _int(0, 65535), "port that serves /metrics (0: none)")
    METRICS_TOKEN: str = _setting("", _text, "bearer token that also allows /metrics on the public port")
    SENTRY_DSN: str = _setting("", _text, "report errors to Sentry; unset: off")
    CGROUP_MEMORY_MAX: str = _setting(
        "/sys/fs/cgroup/memory.max", _text, "file with the container's memory limit (start-up check)"
    )
    DEBUG: bool = _setting(False, _parse_bool, "Django debug mode")
    COOKIES_SECURE: bool = _setting(
        True, _parse_bool, "with DEBUG off, session and CSRF cookies travel over HTTPS only (false: plain-HTTP rigs)"
    )
    ALLOWED_HOSTS: tuple[str, ...] = _setting(("*",), _parse_list, "Django ALLOWED_HOSTS")
    NEXUS_ALLOW_INSECURE: bool = _setting(False, _parse_bool, "allow AUTH_ENABLED=false without DEBUG")
    SHUTDOWN_GRACE_SECONDS: int = _setting(25, _int(0, 3600), "how long running work may finish on SIGTERM")
    HEARTBEAT_SECONDS: int = _setting(20, _int(1, 3600), "WebSocket PING interval")
    API_THROTTLE_USER: str = _setting("6000/min", _parse_rate, "REST requests per authenticated user")
    API_THROTTLE_ANON: str = _setting("600/min", _parse_rate, "REST requests per client address without credentials")
    LOGIN_THROTTLE_USERNAME: str = _setting("10/min", _parse_rate, "failed logins per username before 429")
    LOGIN_THROTTLE_ADDRESS: str = _setting("30/min", _parse_rate, "failed logins per client address before 429")
    THROTTLE_PROXY_COUNT: int = _setting(
        0, _int(0, 10), "reverse proxies in front whose X-Forwarded-For names the client address"
    )
    WORKSPACE_MAX_CONCURRENT: int = _setting(
        4, _int(1, 100_000), "executions one workspace may run at once, per process"
    )
    WORKSPACE_EXECUTIONS_PER_MINUTE: int = _setting(
        600, _int(1, 100_000_000), "tool runs one workspace may start per minute, across processes"
    )
    WORKSPACE_SANDBOX_MS_PER_MINUTE: int = _setting(
        30_000, _int(1, 100_000_000), "sandbox time (ms) one workspace's handlers may use per minute"
    )
    WORKSPACE_HTTP_CALLS_PER_MINUTE: int = _setting(
        300, _int(1, 100_000_000), "nexus.http calls one workspace's handlers may make per minute"
    )
    WS_MAX_MESSAGES_PER_SECOND: int = _setting(50, _int(1, 100_000), "frames a socket may send per second, sustained")
    WS_MESSAGE_BURST: int = _setting(200, _int(1, 1_000_000), "frames a socket may send at once above that rate")
    WS_MAX_CONNECTION_AGE: int = _setting(
        3600, _parse_duration_or_off, "a socket older than this (±10 %) is asked to reconnect (90s, 1h); 0: no cap"
    )
    AUDIT_RETENTION_DAYS: int = _setting(90, _int(1, 36500), "nexus_gc keeps audit records this long")
    SCHEDULE_MIN_INTERVAL: int = _setting(
        10, _parse_duration, "shortest interval a panel's <Schedule> may fire at (seconds, or 30s, 1m)"
    )
    SCHEDULER_ENABLED: bool = _setting(True, _parse_bool, "run the scheduler loop inside nexus_serve")
    SUSPENSION_LEASE_SECONDS: int = _setting(
        15, _int(2, 3600), "a waiting handler's owner renews its lease this often; another process takes it over after"
    )
    MAX_SUSPENDED: int = _setting(1000, _int(0, 1_000_000), "handlers one process may hold waiting on extension calls")
    WORKSPACE_MAX_SUSPENDED: int = _setting(
        100, _int(0, 1_000_000), "handlers of one workspace that may wait on extension calls at once"
    )
    NEXUS_BENCH_ECHO: bool = _setting(False, _parse_bool, "serve the benchmark echo socket (benchmarks only)")
    NEXUS_EXTENSIONS: tuple[str, ...] = _setting(
        ("runtime.extensions.http.HttpExtension", "runtime.extensions.timer.TimerExtension"), _parse_list,
        "extension classes (dotted paths)",
    )

    @property
    def redis_enabled(self) -> bool:
        return bool(self.REDIS_URL)

    @property
    def module_cache_dir(self) -> str:
        """A subdirectory the process creates for itself (0700): CACHE_DIR may be a shared,
        world-writable volume such as a kubelet emptyDir, which the runtime rightly refuses."""
        return str(Path(self.CACHE_DIR) / "modules")


def setting_names() -> list[str]:
    return [f.name for f in fields(NexusConfig)]


def setting_docs() -> dict[str, tuple[Any, str]]:
    return {f.name: (f.default, f.metadata["doc"]) for f in fields(NexusConfig)}


def read_config_dir(directory: str | os.PathLike[str] | None) -> dict[str, str]:
    """Read one value per file; hidden entries (ConfigMap's ``..data`` links) are skipped."""
    if not directory:
        return {}
    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"NEXUS_CONFIG_DIR={directory} is invalid: must be an existing directory")
    known = set(setting_names())
    return {
        entry.name: entry.read_text(encoding="utf-8").strip()
        for entry in sorted(path.iterdir())
        if entry.name in known and entry.is_file()
    }


def load_config(environ: Mapping[str, str] | None = None) -> NexusConfig:
    environ = os.environ if environ is None else environ
    raw = read_config_dir(environ.get("NEXUS_CONFIG_DIR"))
    raw.update({name: environ[name] for name in setting_names() if environ.get(name, "").strip()})
    values: dict[str, Any] = {}
    for spec in fields(NexusConfig):
        if spec.name in raw:
            values[spec.name] = _parse_one(spec.name, raw[spec.name], spec.metadata["parse"])
    if "MAX_INSTANCES" not in raw:
        values["MAX_INSTANCES"] = _instances_within_budget(values, "SANDBOX_MEMORY_BUDGET_MB" in raw)
    config = NexusConfig(**values)
    _check_consistency(config)
    return config


def _parse_one(name: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise ConfigError(f"{name}={shown} is invalid: {exc}") from None


def _instances_within_budget(values: dict[str, Any], budget_set: bool) -> int:
    """MAX_INSTANCES from the memory budget: instances that fit when each grows to MEMORY_LIMIT_MB."""
    defaults = NexusConfig()
    memory_limit_mb = values.get("MEMORY_LIMIT_MB", defaults.MEMORY_LIMIT_MB)
    budget_mb = values.get("SANDBOX_MEMORY_BUDGET_MB", defaults.SANDBOX_MEMORY_BUDGET_MB)
    if not budget_set:
        budget_mb = default_budget_mb(values.get("CGROUP_MEMORY_MAX", defaults.CGROUP_MEMORY_MAX))
    instances = min(budget_mb // memory_limit_mb, MAX_POOL_INSTANCES)
    if instances < 1:
        source = f"SANDBOX_MEMORY_BUDGET_MB={budget_mb}" if budget_set else (
            f"the default SANDBOX_MEMORY_BUDGET_MB ({budget_mb}, what the container's memory limit leaves)"
        )
        raise ConfigError(
            f"{source} is invalid: holds no sandbox instance of MEMORY_LIMIT_MB={memory_limit_mb}; "
            "raise it, lower MEMORY_LIMIT_MB, or set MAX_INSTANCES"
        )
    min_instances = values.get("MIN_INSTANCES", defaults.MIN_INSTANCES)
    if min_instances > instances:
        raise ConfigError(
            f"MIN_INSTANCES={min_instances} is invalid: must be <= MAX_INSTANCES ({instances}, "
            f"SANDBOX_MEMORY_BUDGET_MB={budget_mb} / MEMORY_LIMIT_MB={memory_limit_mb})"
        )
    return instances


def default_budget_mb(cgroup_memory_max: str) -> int:
    """The default budget, lowered to what a container's memory limit leaves beside the process."""
    try:
        text = Path(cgroup_memory_max).read_text().strip()
    except OSError:
        return DEFAULT_SANDBOX_MEMORY_BUDGET_MB
    if not text.isdigit():  # "max": no limit
        return DEFAULT_SANDBOX_MEMORY_BUDGET_MB
    left = int(text) // (1024 * 1024) - PROCESS_RESERVE_MB
    return max(0, min(DEFAULT_SANDBOX_MEMORY_BUDGET_MB, left))


def _check_consistency(config: NexusConfig) -> None:
    if config.MIN_INSTANCES > config.MAX_INSTANCES:
        raise ConfigError(
            f"MIN_INSTANCES={config.MIN_INSTANCES} is invalid: must be <= MAX_INSTANCES ({config.MAX_INSTANCES})"
        )
    if config.AUTH_ENABLED and not config.JWT_SECRET:
        raise ConfigError("JWT_SECRET is missing: required when AUTH_ENABLED=true")
    if not config.AUTH_ENABLED and not config.DEBUG and not config.NEXUS_ALLOW_INSECURE:
        raise ConfigError(
            "AUTH_ENABLED=false is refused: allowed only with DEBUG=true or NEXUS_ALLOW_INSECURE=1"
        )
    if not config.DEBUG and not config.SECRET_KEY:
        raise ConfigError("SECRET_KEY is missing: required when DEBUG=false")
    if config.DB_POOL_MIN_SIZE > config.DB_POOL_MAX_SIZE:
        raise ConfigError(
            f"DB_POOL_MIN_SIZE={config.DB_POOL_MIN_SIZE} is invalid: must be <= DB_POOL_MAX_SIZE "
            f"({config.DB_POOL_MAX_SIZE})"
        )
    if not config.DEBUG:
        _refuse_unsafe_secrets(config)


# Values that are public: deploy/k8s/base/secret.yaml's placeholders and the Makefile's `make run` keys.
UNSAFE_SECRET_PREFIXES = ("CHANGE-ME", "dev-only-")


def unsafe_secrets(config: NexusConfig) -> list[str]:
    """Names of the secret settings that hold a published placeholder or development value."""
    secrets = {
        "JWT_SECRET": [config.JWT_SECRET],
        "JWT_SECRET_PREVIOUS": list(config.JWT_SECRET_PREVIOUS),
        "SECRET_KEY": [config.SECRET_KEY],
        "SECRET_KEY_PREVIOUS": list(config.SECRET_KEY_PREVIOUS),
    }
    names = [name for name, values in secrets.items() if any(v.startswith(UNSAFE_SECRET_PREFIXES) for v in values)]
    if "CHANGE-ME" in config.DATABASE_URL:
        names.append("DATABASE_URL")
    return names


def _refuse_unsafe_secrets(config: NexusConfig) -> None:
    names = unsafe_secrets(config)
    if names:
        raise ConfigError(
            f"{', '.join(names)} hold(s) a placeholder or development value (CHANGE-ME..., dev-only-...): "
            "refused when DEBUG=false; set real secrets (e.g. openssl rand -hex 32)"
        )
