"""Configuration of the runtime and the fixed per-execution limits of the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_STATE_MUTATIONS = 1000
MAX_EVENTS = 100
MAX_RESULT_BYTES = 1024 * 1024
MAX_CODE_BYTES = 256 * 1024
# Error text handed to callers, in characters; longer text is cut with a marker.
MAX_ERROR_MESSAGE = 8 * 1024
MAX_ERROR_STACK = 32 * 1024
# Time one syntax check may take (compiling only, nothing runs).
CHECK_TIMEOUT_MS = 2000
# Compiled handlers kept per guest instance before the least recently used is dropped.
MAX_COMPILED_PER_INSTANCE = 256
# Below MEMORY_LIMIT_MB the guest's allocator stops first, leaving room for the glue to
# report the failure; the linear-memory cap of the instance is the hard stop.
GUEST_ALLOCATOR_HEADROOM_BYTES = 2 * 1024 * 1024
MIN_MEMORY_LIMIT_MB = 4
MIN_TIMEOUT_MS = 10


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Settings of one :class:`runtime.Runtime`.

    ``acquire_timeout_ms`` is how long a caller waits for a free instance before
    ``RuntimeBusyError``; ``suspension_ttl_s`` is how long a suspended execution waits for
    its resume before it is dropped (unless its deadline is set per suspension);
    ``max_suspended`` caps the executions waiting at once (over it the handler's ``await``
    throws a RESOURCE_LIMIT error); ``suspension_key`` authenticates exported suspensions.
    """

    min_instances: int = 2
    max_instances: int = 10
    memory_limit_mb: int = 32
    timeout_ms: int = 5000
    max_host_calls: int = 1000
    cache_dir: str = "/tmp/nexus-cache"
    max_cache_size_mb: int = 64
    acquire_timeout_ms: int = 5000
    suspension_ttl_s: float = 120.0
    max_suspended: int = 1000
    suspension_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _require_int("max_instances", self.max_instances, 1)
        _require_int("min_instances", self.min_instances, 0)
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) must not exceed max_instances ({self.max_instances})"
            )
        _require_int("memory_limit_mb", self.memory_limit_mb, MIN_MEMORY_LIMIT_MB)
        if self.memory_limit_mb > 4000:
            raise ValueError("memory_limit_mb must stay below 4000 (32-bit guest memory)")
        _require_int("timeout_ms", self.timeout_ms, MIN_TIMEOUT_MS)
        _require_int("max_host_calls", self.max_host_calls, 1)
        _require_int("max_cache_size_mb", self.max_cache_size_mb, 0)
        _require_int("acquire_timeout_ms", self.acquire_timeout_ms, 0)
        if not isinstance(self.cache_dir, str) or not self.cache_dir:
            raise ValueError("cache_dir must be a non-empty path")
        if not isinstance(self.suspension_ttl_s, int | float) or self.suspension_ttl_s <= 0:
            raise ValueError("suspension_ttl_s must be a positive number of seconds")
        _require_int("max_suspended", self.max_suspended, 0)
        key = self.suspension_key
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("suspension_key must be at least 16 bytes")

    @property
    def memory_limit_bytes(self) -> int:
        return self.memory_limit_mb * 1024 * 1024


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def byte_text(size: int) -> str:
    """A size for people: ``512 bytes``, ``3 KiB``, ``3.1 MiB``."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
