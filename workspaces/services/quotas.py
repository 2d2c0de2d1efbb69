"""Per-workspace quotas: executions at once, and per-minute budgets of runs, sandbox time and http calls.

Limits are the WORKSPACE_* settings, overridden field by field by the workspace's
``WorkspaceQuota`` row (read at most every few seconds per process). The per-minute budgets
are counted in fixed one-minute windows: in Redis when ``REDIS_URL`` is set, so every process
shares them (one Lua script per check, atomic), otherwise in this process's memory. When
Redis cannot be reached the check lets the work through, logs a warning and counts
``nexus_quota_check_failures_total``: a quota must not take the product down with Redis.
Executions at once are counted per process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol

from asgiref.sync import sync_to_async
from cachetools import TTLCache
from channels.db import database_sync_to_async
from django.conf import settings

from runtime import metrics
from workspaces.services.errors import CodedError, ErrorCode
from workspaces.services.panels.errors import ServiceError

if TYPE_CHECKING:
    from workspaces.models import WorkspaceQuota

logger = logging.getLogger(__name__)

CONCURRENT = "concurrent"
EXECUTIONS = "executions"
SANDBOX_MS = "sandbox_ms"
HTTP_CALLS = "http_calls"
PER_MINUTE = (EXECUTIONS, SANDBOX_MS, HTTP_CALLS)
WINDOW_MS = 60_000
LIMITS_TTL_S = 5.0
# A refusal of "too many at once" suggests trying again this soon.
CONCURRENT_RETRY_S = 1
_WARN_EVERY_S = 30.0
# After the counters failed, checks let work through without trying them for this long.
RETRY_COUNTERS_S = 5.0
_NO_LIMIT = -1


@dataclass(frozen=True)
class Limits:
    """One workspace's quotas; field names are the quota names."""

    concurrent: int
    executions: int
    sandbox_ms: int
    http_calls: int

    def of(self, quota: str) -> int:
        value: int = getattr(self, quota)
        return value

    def as_dict(self) -> dict[str, int]:
        return {spec.name: getattr(self, spec.name) for spec in fields(self)}


# The WorkspaceQuota field that overrides each quota.
OVERRIDE_FIELDS = {
    CONCURRENT: "max_concurrent",
    EXECUTIONS: "executions_per_minute",
    SANDBOX_MS: "sandbox_ms_per_minute",
    HTTP_CALLS: "http_calls_per_minute",
}


class QuotaExceeded(ServiceError):
    """Work refused because the workspace used up one of its quotas."""

    def __init__(self, quota: str, limit: int, retry_after: int) -> None:
        per = "at once" if quota == CONCURRENT else "per minute"
        message = f"Workspace quota '{quota}' reached ({limit} {per}); retry in {retry_after} s"
        super().__init__(ErrorCode.QUOTA_EXCEEDED, message,
                         {"quota": quota, "limit": limit, "retryAfter": retry_after})
        self.quota = quota
        self.limit = limit
        self.retry_after = retry_after


def retry_after_of(error: CodedError) -> int | None:
    """The seconds a QUOTA_EXCEEDED refusal asks the client to wait; None for other errors."""
    return error.retry_after if isinstance(error, QuotaExceeded) else None


# ---------------------------------------------------------------- limits


_limits: TTLCache[str, Limits] = TTLCache(maxsize=4096, ttl=LIMITS_TTL_S)
_limits_lock = threading.Lock()


def default_limits() -> Limits:
    config = settings.NEXUS
    return Limits(
        concurrent=config.WORKSPACE_MAX_CONCURRENT,
        executions=config.WORKSPACE_EXECUTIONS_PER_MINUTE,
        sandbox_ms=config.WORKSPACE_SANDBOX_MS_PER_MINUTE,
        http_calls=config.WORKSPACE_HTTP_CALLS_PER_MINUTE,
    )


def limits_for(workspace: str) -> Limits:
    """The workspace's quotas (by slug): its overrides over the defaults (a database read, cached a few seconds)."""
    with _limits_lock:
        cached = _limits.get(workspace)
    if cached is not None:
        return cached
    from workspaces.models import WorkspaceQuota

    row = WorkspaceQuota.objects.filter(workspace__slug=workspace).values(*OVERRIDE_FIELDS.values()).first() or {}
    defaults = default_limits().as_dict()
    chosen: dict[str, int] = {}
    for quota, column in OVERRIDE_FIELDS.items():
        override = row.get(column)
        chosen[quota] = int(override) if override is not None else defaults[quota]
    limits = Limits(**chosen)
    with _limits_lock:
        _limits[workspace] = limits
    return limits


def forget_limits(workspace: str | None = None) -> None:
    """Drop cached limits (after an override changed), of one workspace or all."""
    with _limits_lock:
        if workspace is None:
            _limits.clear()
        else:
            _limits.pop(workspace, None)


async def _alimits_for(workspace: str) -> Limits:
    with _limits_lock:
        cached = _limits.get(workspace)
    if cached is not None:
        return cached
    # database_sync_to_async gives the thread's pooled connection back when the read is done.
    limits: Limits = await database_sync_to_async(limits_for, thread_sensitive=False)(workspace)
    return limits


# ---------------------------------------------------------------- per-minute windows


@dataclass(frozen=True)
class Charge:
    """An amount to add to one quota's window, refused when it would pass ``limit`` (negative: no limit).

    An amount of 0 only checks that some budget is left (used < limit).
    """

    quota: str
    amount: int
    limit: int


@dataclass(frozen=True)
class Verdict:
    refused: str | None  # the quota that refused, None when everything was charged
    retry_after: int  # seconds until the current window ends
    used: dict[str, int]  # each quota's count in the window, after the charge


class WindowCounters(Protocol):
    def charge(self, workspace: str, charges: Sequence[Charge]) -> Verdict: ...


def _retry_after(retry_ms: int) -> int:
    return max(1, math.ceil(retry_ms / 1000))


class LocalCounters:
    """Per-minute windows in this process's memory (no Redis)."""

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self._window_ms = window_ms
        self._lock = threading.Lock()
        self._window = -1
        self._counts: Counter[tuple[str, str]] = Counter()

    def charge(self, workspace: str, charges: Sequence[Charge]) -> Verdict:
        now_ms = int(time.time() * 1000)
        window = now_ms // self._window_ms
        retry = _retry_after((window + 1) * self._window_ms - now_ms)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, Counter()
            counts = self._counts
            for item in charges:
                if _refuses(counts[workspace, item.quota], item):
                    return Verdict(item.quota, retry, {c.quota: counts[workspace, c.quota] for c in charges})
            for item in charges:
                if item.amount > 0:
                    counts[workspace, item.quota] += item.amount
            return Verdict(None, retry, {c.quota: counts[workspace, c.quota] for c in charges})


def _refuses(used: int, item: Charge) -> bool:
    if item.limit < 0:
        return False
    return used + item.amount > item.limit if item.amount > 0 else used >= item.limit


# KEYS: one counter per quota, without its window; ARGV[1]: window (ms); then amount, limit per key.
# Answers {index of the refusing key or 0, ms until the window ends, count of each key}.
_CHARGE_SCRIPT = """
local t = redis.call('TIME')
local window_ms = tonumber(ARGV[1])
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = math.floor(now_ms / window_ms)
local retry_ms = (window + 1) * window_ms - now_ms
local used = {}
local refused = 0
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local current = tonumber(redis.call('GET', key .. ':' .. window) or '0')
  used[i] = current
  if refused == 0 and limit >= 0 then
    if (amount > 0 and current + amount > limit) or (amount == 0 and current >= limit) then
      refused = i
    end
  end
end
if refused == 0 then
  for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    if amount > 0 then
      local counter = key .. ':' .. window
      used[i] = redis.call('INCRBY', counter, amount)
      redis.call('PEXPIRE', counter, 2 * window_ms)
    end
  end
end
local answer = {refused, retry_ms}
for i = 1, #KEYS do answer[i + 2] = used[i] end
return answer
"""


class RedisCounters:
    """Per-minute windows in Redis, shared by every process that uses the same prefix."""

    def __init__(self, url: str, prefix: str, window_ms: int = WINDOW_MS) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._script = self._client.register_script(_CHARGE_SCRIPT)
        self._prefix = prefix
        self._window_ms = window_ms

    def charge(self, workspace: str, charges: Sequence[Charge]) -> Verdict:
        keys = [f"{self._prefix}:quota:{workspace}:{item.quota}" for item in charges]
        args: list[int] = [self._window_ms]
        for item in charges:
            args.extend((item.amount, item.limit))
        answer = [int(value) for value in self._script(keys=keys, args=args)]
        refused = charges[answer[0] - 1].quota if answer[0] else None
        used = {item.quota: answer[2 + index] for index, item in enumerate(charges)}
        return Verdict(refused, _retry_after(answer[1]), used)

    def close(self) -> None:
        self._client.close()


_counters: WindowCounters | None = None
_counters_lock = threading.Lock()
_last_warning = 0.0
_skip_until = 0.0


def counters() -> WindowCounters:
    """This process's counters: Redis when REDIS_URL is set, memory otherwise."""
    global _counters
    if _counters is None:
        with _counters_lock:
            if _counters is None:
                config = settings.NEXUS
                _counters = (RedisCounters(config.REDIS_URL, config.REDIS_PREFIX) if config.redis_enabled
                             else LocalCounters())
    return _counters


def use_counters(replacement: WindowCounters | None) -> None:
    """Swap the process's counters (tests; None: choose again from the settings); they are tried at once."""
    global _counters, _skip_until
    with _counters_lock:
        _counters = replacement
        _skip_until = 0.0


def charge(workspace: str, charges: Sequence[Charge]) -> Verdict | None:
    """Charge the workspace's windows; None when the counters cannot be reached (the work goes ahead).

    After a failure the counters are left alone for ``RETRY_COUNTERS_S``, so that an outage
    costs each run nothing instead of a connection timeout.
    """
    global _last_warning, _skip_until
    now = time.monotonic()
    if now < _skip_until:
        metrics.QUOTA_CHECK_FAILURES_TOTAL.inc()
        return None
    try:
        return counters().charge(workspace, charges)
    except Exception as exc:  # Redis down or misbehaving: fail open
        metrics.QUOTA_CHECK_FAILURES_TOTAL.inc()
        now = time.monotonic()
        _skip_until = now + RETRY_COUNTERS_S
        if now - _last_warning >= _WARN_EVERY_S:
            _last_warning = now
            logger.warning("quota counters unreachable, letting work through for %.0f s: %s", RETRY_COUNTERS_S, exc)
        return None


def _needs_thread() -> bool:
    return not isinstance(counters(), LocalCounters)


async def acharge(workspace: str, charges: Sequence[Charge]) -> Verdict | None:
    if not _needs_thread():
        return charge(workspace, charges)
    verdict: Verdict | None = await sync_to_async(charge, thread_sensitive=False)(workspace, charges)
    return verdict


def _refusal(verdict: Verdict | None, limits: Limits) -> QuotaExceeded | None:
    if verdict is None or verdict.refused is None:
        return None
    metrics.QUOTA_REJECTIONS_TOTAL.labels(verdict.refused).inc()
    return QuotaExceeded(verdict.refused, limits.of(verdict.refused), verdict.retry_after)


# ---------------------------------------------------------------- executions at once


_running: Counter[str] = Counter()
_running_lock = threading.Lock()


def _enter(workspace: str, limit: int) -> None:
    with _running_lock:
        if _running[workspace] >= limit:
            refused = True
        else:
            _running[workspace] += 1
            refused = False
    if refused:
        metrics.QUOTA_REJECTIONS_TOTAL.labels(CONCURRENT).inc()
        raise QuotaExceeded(CONCURRENT, limit, CONCURRENT_RETRY_S)


def _leave(workspace: str) -> None:
    with _running_lock:
        _running[workspace] -= 1
        if _running[workspace] <= 0:
            del _running[workspace]


@contextlib.contextmanager
def waiting(workspace: str) -> Iterator[None]:
    """An admitted run waiting on an extension call is not running: its place is free meanwhile.

    It takes the place back when it resumes, past the limit if need be: a handler that has
    started is never refused halfway.
    """
    _leave(workspace)
    try:
        yield
    finally:
        with _running_lock:
            _running[workspace] += 1


def running(workspace: str) -> int:
    """Executions of the workspace in progress in this process."""
    with _running_lock:
        return _running[workspace]


# ---------------------------------------------------------------- the service's entry points


@dataclass
class ExecutionUsage:
    """What one admitted execution used, charged when it ends."""

    sandbox_ms: float = 0.0


@contextlib.asynccontextmanager
async def execution_slot(workspace: str) -> AsyncIterator[ExecutionUsage]:
    """Admit one tool run of the workspace, or raise QuotaExceeded; its sandbox time is charged after it."""
    limits = await _alimits_for(workspace)
    _enter(workspace, limits.concurrent)
    try:
        verdict = await acharge(workspace, (Charge(EXECUTIONS, 1, limits.executions),
                                            Charge(SANDBOX_MS, 0, limits.sandbox_ms)))
        refusal = _refusal(verdict, limits)
        if refusal is not None:
            raise refusal
        usage = ExecutionUsage()
        try:
            yield usage
        finally:
            spent = math.ceil(usage.sandbox_ms)
            if spent > 0:
                await acharge(workspace, (Charge(SANDBOX_MS, spent, _NO_LIMIT),))
    finally:
        _leave(workspace)


async def charge_http_call(workspace: str) -> QuotaExceeded | None:
    """Count one http call of a handler; the refusal when the workspace's budget is spent."""
    limits = await _alimits_for(workspace)
    return _refusal(await acharge(workspace, (Charge(HTTP_CALLS, 1, limits.http_calls),)), limits)


def usage_of(workspace: str) -> dict[str, dict[str, int | None]]:
    """Each quota's current use (this minute; at once in this process) next to its limit."""
    limits = limits_for(workspace)
    verdict = charge(workspace, [Charge(quota, 0, _NO_LIMIT) for quota in PER_MINUTE])
    used: dict[str, int | None] = dict.fromkeys(PER_MINUTE) if verdict is None else dict(verdict.used)
    used[CONCURRENT] = running(workspace)
    return {quota: {"used": used[quota], "limit": limits.of(quota)} for quota in (CONCURRENT, *PER_MINUTE)}


def describe(workspace: str) -> dict[str, int]:
    """The workspace's limits as owners read them."""
    limits = limits_for(workspace)
    return {
        "maxConcurrent": limits.concurrent,
        "executionsPerMinute": limits.executions,
        "sandboxMsPerMinute": limits.sandbox_ms,
        "httpCallsPerMinute": limits.http_calls,
    }


# ---------------------------------------------------------------- overrides


def save_override(row: WorkspaceQuota) -> None:
    """Store a workspace's quota overrides; this process uses them at once, others within LIMITS_TTL_S."""
    row.full_clean()
    row.save()
    forget_limits(row.workspace.slug)


def delete_override(row: WorkspaceQuota) -> None:
    """Drop a workspace's overrides: it goes back to the defaults."""
    slug = row.workspace.slug
    row.delete()
    forget_limits(slug)
