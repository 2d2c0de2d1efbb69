"""The public entry point: Runtime.execute / resume / check_syntax / stats / close."""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import telemetry
from .capabilities import CapabilitySet, parse_capability
from .engine import TICK_MS, GuestModule, guest_module
from .errors import (
    COMPILATION_ERROR,
    ERROR_CODES,
    EXECUTION_ERROR,
    INSTANCE_POISONING_CODES,
    INTERNAL_ERROR,
    INVALID_ARGS,
    INVALID_HANDLER,
    MEMORY_LIMIT,
    PERMISSION_DENIED,
    RESOURCE_LIMIT,
    TIMEOUT,
    GuestFault,
    RuntimeBusyError,
    RuntimeClosedError,
    error_dict,
)
from .execution import ERROR, SUCCESS, SUSPENDED, ExecutionContext, ExecutionResult
from .json_depth import MAX_JSON_DEPTH, exceeds_depth
from .limits import (
    CHECK_TIMEOUT_MS,
    MAX_CODE_BYTES,
    MAX_ERROR_MESSAGE,
    MAX_ERROR_STACK,
    MAX_EVENTS,
    MAX_RESULT_BYTES,
    MAX_STATE_MUTATIONS,
    RuntimeConfig,
    byte_text,
)
from .pool import Pool
from .sandbox import ANSWER_ERROR, ANSWER_OK, ANSWER_SUSPENDED, Sandbox

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("nexus.runtime")


def _not_json(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON data")


# The C encoder of the json module, built once: JSONEncoder.encode rebuilds it on every call.
_c_encoder = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    if getattr(json.encoder, "c_make_encoder", None)
    else None
)
_py_encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_not_json).encode


def _encode(value: Any) -> str:
    """Compact ASCII JSON; TypeError/ValueError/RecursionError for what JSON cannot hold."""
    if _c_encoder is None:
        return _py_encode(value)
    return "".join(_c_encoder(value, 0))


_FRAME = re.compile(r"<input>:(\d+):(\d+)")
_VIEW_TYPES = frozenset({"setFilter", "scrollTo", "focus"})
_HANDLER_ID_CACHE = 4096
_MAX_STACK_LINES = 12
# Syntax checks running at once, each in an instance of its own.
_CONCURRENT_CHECKS = 2
_CALL_FUNCTIONS = telemetry.HOST_FUNCTIONS
_VIEW_SLOT = {"setFilter": 3, "scrollTo": 4, "focus": 5}


@dataclass
class _Suspension:
    sandbox: Sandbox
    context: ExecutionContext
    code: str
    call_id: int
    timeout_ms: int
    used_ms: float
    expires_at: float


class _Checks:
    """Answers of one CapabilitySet, remembered: the same keys come back execution after execution."""

    __slots__ = ("_caps", "_emit", "_ext", "_view", "_write")
    _LIMIT = 4096

    def __init__(self, caps: CapabilitySet) -> None:
        self._caps = caps
        self._write: dict[str, bool] = {}
        self._emit: dict[str, bool] = {}
        self._view: dict[str, bool] = {}
        self._ext: dict[str, bool] = {}

    def can_write(self, key: str) -> bool:
        return self._answer(self._write, key, self._caps.can_write)

    def can_emit(self, name: str) -> bool:
        return self._answer(self._emit, name, self._caps.can_emit)

    def can_update_view(self, component_id: str) -> bool:
        return self._answer(self._view, component_id, self._caps.can_update_view)

    def can_use_ext(self, alias: str) -> bool:
        return self._answer(self._ext, alias, self._caps.can_use_ext)

    def _answer(self, memo: dict[str, bool], name: str, check: Callable[[str], bool]) -> bool:
        known = memo.get(name)
        if known is None:
            if len(memo) >= self._LIMIT:
                memo.clear()
            known = memo[name] = check(name)
        return known


@dataclass(slots=True)
class _Segment:
    """A guest answer converted to the public shapes and checked against the context."""

    kind: int
    return_value: Any = None
    mutations: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] | None = None
    views: list[dict[str, Any]] | None = None
    call: list[Any] | None = None
    error: dict[str, Any] | None = None
    logs: list[dict[str, str]] | None = None
    calls: int = 0
    discard: bool = False  # the instance must not be reused


class Runtime:
    """Runs untrusted handler JavaScript in pooled QuickJS/WebAssembly sandboxes.

    Thread-safe: any number of threads may call execute/resume at once; each execution
    holds one instance. The async variants run the same work on the runtime's own worker
    threads (wasmtime releases the GIL, so executions really run in parallel).
    """

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        if config is None:
            config = RuntimeConfig()
        if not isinstance(config, RuntimeConfig):
            raise TypeError("config must be a RuntimeConfig")
        self.config = config
        self._guest: GuestModule = guest_module(config.cache_dir, config.max_cache_size_mb)
        self._pool = Pool(self._guest, config)
        self._checkers = threading.BoundedSemaphore(_CONCURRENT_CHECKS)
        self._max_calls = config.max_host_calls
        self._limits_json = _encode([config.max_host_calls, MAX_STATE_MUTATIONS, MAX_EVENTS, MAX_RESULT_BYTES])
        self._handler_ids: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self._grants: dict[tuple[tuple[str, ...], str], tuple[str, bool]] = {}
        self._checks: dict[CapabilitySet, _Checks] = {}
        self._suspensions: dict[str, _Suspension] = {}
        self._susp_cond = threading.Condition(threading.Lock())
        self._reaper: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closed = False
        self._stats_lock = threading.Lock()
        self._executions = 0
        self._errors = 0
        self._duration_us_total = 0
        self._cache_hits = 0
        self._cache_misses = 0
        self._pending_outcomes: dict[tuple[str, str], int] = {}
        self._pending_buckets = [0] * (len(telemetry.DURATION_BUCKETS) + 1)
        self._pending_seconds = 0.0
        self._pending_calls = [0] * len(_CALL_FUNCTIONS)
        self._pool.warm()
        telemetry.register(self)

    # ------------------------------------------------------------------ public API

    def execute(self, code: str, ctx: ExecutionContext, timeout_ms: int | None = None) -> ExecutionResult:
        """Run ``code`` (the body of an async function) in a sandbox for ``ctx``.

        Raises RuntimeBusyError when no instance frees up within ``acquire_timeout_ms``,
        TypeError/ValueError for misuse of the API; every handler problem is an error result.
        """
        started = time.perf_counter_ns()
        if not isinstance(ctx, ExecutionContext):
            raise TypeError("ctx must be an ExecutionContext")
        timeout = self.config.timeout_ms if timeout_ms is None else _timeout(timeout_ms)
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        known = self._handler_ids.get(code) if isinstance(code, str) else None
        handler_id, problem = known if known is not None else self._identify(code)
        if problem is not None:
            return self._failed(problem, started)
        caps_json, reads_all = self._grant(ctx)
        try:
            args = ctx.args
            state_json = _encode(self._readable(ctx, ctx.state, reads_all))
            args_json = _encode(args if type(args) is dict else dict(args))
            scope_json = _encode(dict(ctx.scope)) if ctx.scope else None
        except (TypeError, ValueError, RecursionError) as exc:
            return self._failed(error_dict(INVALID_ARGS, f"state, args and scope must be JSON data: {exc}"), started)
        sandbox = self._pool.acquire(ctx.panel_id, self.config.acquire_timeout_ms / 1000)
        handler_slot, compiled = sandbox.handlers.lookup(handler_id)
        grant_slot, granted = sandbox.capabilities.lookup(ctx.grant_key)
        extra = []
        if not compiled:
            extra.append('"c":' + _encode(code) + ',"n":"' + _wrapper_label() + '"')
        if not granted:
            extra.append('"cp":' + caps_json + ',"xm":' + ctx.grant_key[1] + ',"lm":' + self._limits_json)
        if scope_json is not None:
            extra.append('"sc":' + scope_json)
        if sandbox.needs_seed:
            extra.append('"rs":' + _encode(sandbox.take_seed()))
        tail = ",{" + ",".join(extra) + "}]" if extra else "]"
        # The instance keeps the arguments it last ran with: the same ones are not sent again.
        same_args = args_json == sandbox.last_args
        request = f"[{handler_slot},{grant_slot},{state_json},{0 if same_args else args_json}{tail}".encode("ascii")
        answer = self._run(sandbox, request, timeout, timeout)
        sandbox.last_args = None if answer[0] == ANSWER_ERROR else args_json
        # Time used counts against the handler's budget across resumes; the host's own
        # few microseconds around the sandbox call are included.
        used_ms = (time.perf_counter_ns() - started) / 1e6
        segment = self._segment(answer, ctx)
        if not compiled and (
            segment.kind == ANSWER_ERROR
            and segment.error is not None
            and segment.error.get("code") == COMPILATION_ERROR
        ):
            sandbox.handlers.abandon(handler_id)
        return self._conclude(sandbox, segment, ctx, code, timeout, used_ms, started, compiled)

    def resume(
        self,
        suspension_id: str,
        ok: bool = True,
        value: Any = None,
        error: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Continue a suspended execution with the extension call's outcome.

        ``ok=False`` makes the handler's ``await`` throw an Error carrying ``error``;
        ``state``, when given, is the panel's committed state that ``$state`` shows from now on.
        """
        started = time.perf_counter_ns()
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        if ok and exceeds_depth(value):
            ok, value, error = False, None, f"the extension's answer is nested deeper than {MAX_JSON_DEPTH} levels"
        try:
            value_json = _encode(_plain(value))
            error_json = _encode(None if error is None else str(error))
            if state is not None and not isinstance(state, dict):
                raise TypeError("state must be a dict")
        except (TypeError, ValueError, RecursionError) as exc:
            return self._failed(error_dict(INVALID_ARGS, f"resume arguments must be JSON data: {exc}"), started)
        suspension = self._take_suspension(suspension_id)
        if suspension is None:
            return self._failed(
                error_dict(INVALID_ARGS, "no such suspension: unknown id, already resumed, cancelled or expired"),
                started,
            )
        ctx = suspension.context
        try:
            state_json = "null" if state is None else _encode(self._readable(ctx, state, self._grant(ctx)[1]))
        except (TypeError, ValueError, RecursionError) as exc:
            self._pool.discard(suspension.sandbox)
            return self._failed(error_dict(INVALID_ARGS, f"state must be JSON data: {exc}"), started)
        flag = "true" if ok else "false"
        request = f"[{suspension.call_id},{flag},{value_json},{error_json},{state_json}]".encode("ascii")
        remaining = max(suspension.timeout_ms - suspension.used_ms, 1.0)
        began = time.perf_counter_ns()
        answer = self._run(suspension.sandbox, request, remaining, suspension.timeout_ms, resume=True)
        used = suspension.used_ms + (time.perf_counter_ns() - began) / 1e6
        segment = self._segment(answer, ctx)
        return self._conclude(
            suspension.sandbox, segment, ctx, suspension.code, suspension.timeout_ms, used, started, None
        )

    async def aexecute(self, code: str, ctx: ExecutionContext, timeout_ms: int | None = None) -> ExecutionResult:
        """``execute`` on a worker thread, so the event loop never blocks."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker_pool(), functools.partial(self.execute, code, ctx, timeout_ms))

    async def aresume(
        self,
        suspension_id: str,
        ok: bool = True,
        value: Any = None,
        error: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """``resume`` on a worker thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        call = functools.partial(self.resume, suspension_id, ok=ok, value=value, error=error, state=state)
        return await loop.run_in_executor(self._worker_pool(), call)

    def cancel(self, suspension_id: str) -> bool:
        """Abandon a suspended execution and free its instance; False if there was none."""
        suspension = self._take_suspension(suspension_id)
        if suspension is None:
            return False
        # Nothing runs in it again: the jobs the handler left behind die with the instance.
        self._pool.discard(suspension.sandbox)
        return True

    def check_syntax(self, code: str) -> dict[str, Any] | None:
        """Compile ``code`` without running it: None when it compiles, else a COMPILATION_ERROR dict.

        The location is relative to the first line of ``code``.
        """
        _, problem = self._identify(code)
        if problem is not None:
            return problem
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        request = f'[0,0,{{}},{{}},{{"k":1,"c":{_encode(code)},"n":"{_wrapper_label()}"}}]'.encode("ascii")
        limit = min(self.config.timeout_ms, CHECK_TIMEOUT_MS)
        # A pristine instance of its own for every check, closed after it: no panel's
        # instance is touched and nothing of one check reaches the next.
        if not self._checkers.acquire(timeout=self.config.acquire_timeout_ms / 1000):
            raise RuntimeBusyError("too many syntax checks at once")
        try:
            checker = Sandbox(self._guest, self.config.memory_limit_bytes)
            try:
                answer = self._run(checker, request, limit, limit)
            finally:
                checker.close()
        finally:
            self._checkers.release()
        segment = self._segment(answer, None)
        if segment.error is None:
            return None
        return self._error(segment.error, code)

    def gauge_figures(self) -> dict[str, float]:
        """The instantaneous figures behind the runtime gauges of ``runtime.metrics``."""
        counts = self._pool.counts()
        with self._susp_cond:
            suspended = len(self._suspensions)
        return {
            "idle": counts["idle"],
            "busy": counts["checked_out"],
            "waiting": counts["waiting"],
            "suspended": suspended,
            "cache_hits": self._cache_hits,
            "cache_misses": self._cache_misses,
            "memory_peak_bytes": self._pool.peak_memory,
        }

    def stats(self) -> dict[str, Any]:
        """Pool, cache, duration and memory figures of this runtime."""
        counts = self._pool.counts()
        with self._susp_cond:
            suspended = len(self._suspensions)
        with self._stats_lock:
            executions = self._executions
            hits, misses = self._cache_hits, self._cache_misses
            total_us = self._duration_us_total
            errors = self._errors
        lookups = hits + misses
        memory = sum(self._pool.memory_bytes.values())
        return {
            "executions": executions,
            "errors": errors,
            "active_instances": counts["checked_out"],
            "available_instances": counts["idle"],
            "total_instances": counts["total"],
            "max_instances": self.config.max_instances,
            "min_instances": self.config.min_instances,
            "suspended": suspended,
            "cache_hits": hits,
            "cache_misses": misses,
            "cache_hit_rate": hits / lookups if lookups else 0.0,
            "avg_duration_us": total_us / executions if executions else 0.0,
            "memory_bytes": memory,
            "memory_used_bytes": memory,
            "memory_peak_bytes": self._pool.peak_memory,
            "memory_limit_bytes": self.config.memory_limit_bytes,
            "instances_created": self._pool.created,
            "instances_discarded": self._pool.discarded,
            "instances_reset": self._pool.resets,
            "module_source": self._guest.source,
        }

    def close(self) -> None:
        """Drop suspended executions, close every instance and the worker threads."""
        with self._susp_cond:
            if self._closed:
                return
            self._closed = True
            suspensions, self._suspensions = list(self._suspensions.values()), {}
            self._susp_cond.notify_all()
        for suspension in suspensions:
            self._pool.discard(suspension.sandbox)
        self._pool.close()
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
        if "runtime.metrics" in sys.modules:
            self.flush_metrics()
        telemetry.unregister(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ execution

    def _run(
        self, sandbox: Sandbox, request: bytes, timeout_ms: float, limit_ms: float, resume: bool = False
    ) -> list[Any]:
        """Send one request with ``timeout_ms`` left of the handler's ``limit_ms``.

        A failed instance yields an error answer and is marked dirty; an answer larger
        than clients may receive becomes a RESOURCE_LIMIT error.
        """
        try:
            ticks = int(timeout_ms // TICK_MS) + 2
            answer = sandbox.resume(request, ticks) if resume else sandbox.start(request, ticks)
        except GuestFault as fault:
            error = fault.to_error()
            if fault.code == TIMEOUT:
                error["message"] = f"the handler ran past its limit of {int(limit_ms)} ms"
            return [ANSWER_ERROR, error, [], 0]
        except Exception as exc:  # the caller gets INTERNAL_ERROR, the instance is dropped
            logger.exception("sandbox failure")
            sandbox.dirty = True
            return [ANSWER_ERROR, error_dict(INTERNAL_ERROR, f"sandbox failure: {exc}"), [], 0]
        if sandbox.answer_size > MAX_RESULT_BYTES and answer[0] != ANSWER_ERROR:
            return [ANSWER_ERROR, oversize_error(answer, sandbox.answer_size), [], 0]
        return answer

    def _segment(self, answer: list[Any], ctx: ExecutionContext | None) -> _Segment:
        """Convert a glue answer; with a context, re-check it against the capabilities."""
        kind = answer[0]
        try:
            if kind == ANSWER_ERROR:
                error = answer[1] if isinstance(answer[1], dict) else error_dict(INTERNAL_ERROR, "malformed error")
                return _Segment(kind, error=error, logs=_logs(answer[2]), calls=_calls(answer[3]))
            raw_logs, calls = answer[5], answer[6]
            if type(calls) is not int or calls < 0:
                calls = 0
            segment = _Segment(kind, logs=_logs(raw_logs) if raw_logs else None, calls=calls)
            if kind == ANSWER_OK:
                segment.return_value = answer[1]
            else:
                segment.call = answer[1]
            if ctx is None:
                return segment
            caps = self._checks.get(ctx.capability_set)
            if caps is None:
                if len(self._checks) >= 1024:
                    self._checks.clear()
                caps = self._checks[ctx.capability_set] = _Checks(ctx.capability_set)
            problem: dict[str, Any] | None = None
            if answer[2]:
                problem = _convert_mutations(answer[2], caps, segment)
            if answer[3] and problem is None:
                problem = _convert_events(answer[3], caps, segment)
            if answer[4] and problem is None:
                problem = _convert_views(answer[4], caps, segment)
            if calls > self._max_calls and problem is None:
                problem = error_dict(RESOURCE_LIMIT, f"more than {self._max_calls} sandbox API calls")
            if problem is None and kind == ANSWER_SUSPENDED:
                problem = _check_call(segment.call, caps, ctx.extension_methods)
            segment.error = problem
            if problem is not None:
                # The glue checks all of this itself: an answer that fails here comes
                # from a guest that changed its glue, and the instance goes.
                segment.kind = ANSWER_ERROR
                segment.discard = True
            return segment
        except (IndexError, TypeError, ValueError, AttributeError):
            return _Segment(ANSWER_ERROR, error=error_dict(INTERNAL_ERROR, _MALFORMED), logs=[], discard=True)

    def _conclude(
        self,
        sandbox: Sandbox,
        segment: _Segment,
        ctx: ExecutionContext,
        code: str,
        timeout_ms: int,
        used_ms: float,
        started: int,
        cache_hit: bool | None,
    ) -> ExecutionResult:
        error = segment.error
        memory = sandbox.memory_size()
        if sandbox.exhausted_memory(memory) and (error is None or error.get("code") == EXECUTION_ERROR):
            # The handler caught an out-of-memory error (or failed because of it).
            error = segment.error = error_dict(
                MEMORY_LIMIT, f"the handler used up its memory limit of {self.config.memory_limit_mb} MiB"
            )
        if segment.discard or (error is not None and error.get("code") in INSTANCE_POISONING_CODES):
            sandbox.dirty = True
        metrics_ = {
            "duration_us": 0,
            "memory_used_bytes": memory,
            "memory_peak_bytes": memory,
            "host_calls": segment.calls,
            "cache_hit": cache_hit is not False,
        }
        logs = segment.logs or []
        if error is not None:
            result = ExecutionResult(ERROR, None, [], [], [], self._error(error, code), None, metrics_, logs)
            self._pool.release(sandbox, memory)
            if error.get("code") == INTERNAL_ERROR:
                logger.warning("sandbox failure in %s/%s: %s", ctx.panel_id, ctx.handler_name, error.get("message"))
        elif segment.kind == ANSWER_SUSPENDED:
            suspension = self._suspend(sandbox, segment.call or [], ctx, code, timeout_ms, used_ms)
            result = ExecutionResult(
                SUSPENDED,
                None,
                segment.mutations or [],
                segment.events or [],
                segment.views or [],
                None,
                suspension,
                metrics_,
                logs,
            )
        else:
            result = ExecutionResult(
                SUCCESS,
                segment.return_value,
                segment.mutations or [],
                segment.events or [],
                segment.views or [],
                None,
                None,
                metrics_,
                logs,
            )
            self._pool.release(sandbox, memory)
        duration_us = (time.perf_counter_ns() - started) // 1000
        metrics_["duration_us"] = duration_us
        self._record(result, duration_us, cache_hit)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "executed %s on %s: %s in %d us",
                ctx.handler_name,
                ctx.panel_id,
                result.error["code"] if result.error else result.status,
                duration_us,
            )
        return result

    def _suspend(
        self,
        sandbox: Sandbox,
        call: list[Any],
        ctx: ExecutionContext,
        code: str,
        timeout_ms: int,
        used_ms: float,
    ) -> dict[str, Any]:
        suspension_id = secrets.token_urlsafe(18)
        record = _Suspension(
            sandbox=sandbox,
            context=ctx,
            code=code,
            call_id=int(call[0]),
            timeout_ms=timeout_ms,
            used_ms=used_ms,
            expires_at=time.monotonic() + self.config.suspension_ttl_s,
        )
        with self._susp_cond:
            self._suspensions[suspension_id] = record
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_loop, name="nexus-suspensions", daemon=True)
                self._reaper.start()
            self._susp_cond.notify()
        return {"suspension_id": suspension_id, "extension": call[1], "method": call[2], "args": call[3]}

    def _take_suspension(self, suspension_id: object) -> _Suspension | None:
        if not isinstance(suspension_id, str):
            return None
        with self._susp_cond:
            record = self._suspensions.pop(suspension_id, None)
        if record is not None and record.expires_at <= time.monotonic():
            self._pool.discard(record.sandbox)
            return None
        return record

    def _reap_loop(self) -> None:
        while True:
            expired: list[_Suspension] = []
            with self._susp_cond:
                if self._closed:
                    return
                now = time.monotonic()
                for key, record in list(self._suspensions.items()):
                    if record.expires_at <= now:
                        expired.append(self._suspensions.pop(key))
                if not expired:
                    upcoming = min((r.expires_at for r in self._suspensions.values()), default=now + 60)
                    self._susp_cond.wait(max(upcoming - now, 0.01))
            for record in expired:
                logger.info("a suspended execution expired; its instance is freed")
                self._pool.discard(record.sandbox)

    # ------------------------------------------------------------------ helpers

    def _identify(self, code: object) -> tuple[str, dict[str, Any] | None]:
        """The cache key of a handler and, when its code is unusable, why."""
        if not isinstance(code, str):
            return "", error_dict(INVALID_HANDLER, "handler code must be a string")
        known = self._handler_ids.get(code)
        if known is None:
            problem = _check_code(code)
            handler_id = "" if problem else hashlib.sha256(code.encode("utf-8")).hexdigest()[:32]
            known = (handler_id, problem)
            if len(self._handler_ids) >= _HANDLER_ID_CACHE:
                self._handler_ids.clear()
            self._handler_ids[code] = known
        return known

    def _grant(self, ctx: ExecutionContext) -> tuple[str, bool]:
        """The capability scopes as the glue takes them, and whether every key is readable."""
        cached = self._grants.get(ctx.grant_key)
        if cached is None:
            cached = _grant_payload(ctx.capability_set)
            if len(self._grants) >= 1024:
                self._grants.clear()
            self._grants[ctx.grant_key] = cached
        return cached

    @staticmethod
    def _readable(ctx: ExecutionContext, state: Any, reads_all: bool) -> dict[str, Any]:
        """Only readable keys enter the sandbox."""
        if type(state) is not dict:
            state = dict(state)
        if not reads_all:
            can_read = ctx.capability_set.can_read
            state = {key: value for key, value in state.items() if isinstance(key, str) and can_read(key)}
        return state

    def _error(self, raw: dict[str, Any], code: str) -> dict[str, Any]:
        """Normalize a guest error: known code, message, handler-relative location and stack."""
        error_code = raw.get("code")
        if error_code not in ERROR_CODES:
            error_code = INTERNAL_ERROR
        message = raw.get("message")
        text = cut(message, MAX_ERROR_MESSAGE) if isinstance(message, str) and message else error_code
        error = error_dict(error_code, text)
        stack = raw.get("stack")
        if isinstance(stack, str):
            location, clean = _handler_stack(cut(stack, MAX_ERROR_STACK))
            if location is not None and error_code == COMPILATION_ERROR:
                location = _syntax_location(code, location["line"])
                clean = f"    at handler:{location['line']}:{location['column']}"
            if location is not None:
                error["location"] = location
                snippet = _snippet(code, location["line"])
                if snippet is not None:
                    error["snippet"] = snippet
            if clean:
                error["stack"] = clean
        if error_code == COMPILATION_ERROR and "location" not in error:
            location = _any_syntax_error(code)
            if location is not None:
                error["location"] = location
                snippet = _snippet(code, location["line"])
                if snippet is not None:
                    error["snippet"] = snippet
        resource = raw.get("resource")
        if isinstance(resource, str):
            error["resource"] = resource
        return error

    def _failed(self, error: dict[str, Any], started: int) -> ExecutionResult:
        duration_us = (time.perf_counter_ns() - started) // 1000
        result = ExecutionResult(status=ERROR, error=error)
        result.metrics["duration_us"] = duration_us
        self._record(result, duration_us, None)
        return result

    def _record(self, result: ExecutionResult, duration_us: int, cache_hit: bool | None) -> None:
        """Count an execution; ``cache_hit`` is None when no handler lookup took place.

        Prometheus updates are buffered here and applied by :meth:`flush_metrics`, which
        the registry runs before every collection.
        """
        code = result.error["code"] if result.error else ""
        key = (result.status, code)
        seconds = duration_us / 1e6
        bucket = bisect.bisect_left(telemetry.DURATION_BUCKETS, seconds)
        with self._stats_lock:
            self._executions += 1
            self._duration_us_total += duration_us
            if code:
                self._errors += 1
            if cache_hit is True:
                self._cache_hits += 1
            elif cache_hit is False:
                self._cache_misses += 1
            outcomes = self._pending_outcomes
            outcomes[key] = outcomes.get(key, 0) + 1
            self._pending_buckets[bucket] += 1
            self._pending_seconds += seconds
            if result.events or result.logs or result.view_commands or result.suspension:
                _count_calls(result, self._pending_calls)

    def flush_metrics(self) -> None:
        """Apply the buffered execution figures to the Prometheus metrics (``runtime.metrics``)."""
        from . import metrics

        with self._stats_lock:
            outcomes, self._pending_outcomes = self._pending_outcomes, {}
            buckets, self._pending_buckets = self._pending_buckets, [0] * (len(telemetry.DURATION_BUCKETS) + 1)
            seconds, self._pending_seconds = self._pending_seconds, 0.0
            calls, self._pending_calls = self._pending_calls, [0] * len(_CALL_FUNCTIONS)
        for (status, code), count in outcomes.items():
            metrics.HANDLER_EXECUTIONS_TOTAL.labels(status, code).inc(count)
            if code:
                metrics.ERRORS_TOTAL.labels(code).inc(count)
        if any(buckets):
            metrics.add_durations(buckets, seconds, metrics.HANDLER_DURATION_SECONDS.observe)
        for index, count in enumerate(calls):
            if count:
                metrics.HOST_CALLS_TOTAL.labels(_CALL_FUNCTIONS[index]).inc(count)

    def _worker_pool(self) -> ThreadPoolExecutor:
        from concurrent.futures import ThreadPoolExecutor

        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.max_instances, thread_name_prefix="nexus-sandbox"
                )
            return self._executor


# ---------------------------------------------------------------------- module helpers


def _timeout(timeout_ms: object) -> int:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
        raise ValueError("timeout_ms must be a positive number of milliseconds")
    return max(int(timeout_ms), 1)


def _check_code(code: str) -> dict[str, Any] | None:
    try:
        size = len(code.encode("utf-8"))
    except UnicodeEncodeError:
        return error_dict(INVALID_HANDLER, "handler code is not valid Unicode text")
    if size > MAX_CODE_BYTES:
        return error_dict(INVALID_HANDLER, f"handler code is larger than {MAX_CODE_BYTES} bytes")
    if "\x00" in code:
        return error_dict(INVALID_HANDLER, "handler code contains a NUL character")
    return None


def _plain(value: Any) -> Any:
    """Tuples as lists, other mappings as dicts, so the JSON encoder accepts them (top level)."""
    if value is None or isinstance(value, dict | list | str | int | float | bool):
        return value
    if isinstance(value, tuple):
        return list(value)
    try:
        return dict(value)
    except (TypeError, ValueError):
        return value


def _grant_payload(caps: CapabilitySet) -> tuple[str, bool]:
    """``[read, write, emit, view, ext]`` scopes for the glue; write implies read."""
    kinds = ("state:read", "state:write", "events:emit", "view:update", "ext")
    groups: dict[str, list[str]] = {kind: [] for kind in kinds}
    for token in caps.tokens:
        capability = parse_capability(token)
        groups[capability.kind].append(capability.scope)
    readable = groups["state:read"] + groups["state:write"]
    payload = [readable, groups["state:write"], groups["events:emit"], groups["view:update"], groups["ext"]]
    return _encode(payload), "*" in readable


_MALFORMED = "the sandbox answer is malformed"


def _convert_mutations(raw: Any, caps: _Checks, segment: _Segment) -> dict[str, Any] | None:
    if type(raw) is not list:
        return error_dict(INTERNAL_ERROR, _MALFORMED)
    if len(raw) > MAX_STATE_MUTATIONS:
        return error_dict(RESOURCE_LIMIT, f"more than {MAX_STATE_MUTATIONS} state mutations")
    mutations = []
    can_write = caps.can_write
    for entry in raw:
        if type(entry) is not list or not 1 <= len(entry) <= 2 or not isinstance(entry[0], str):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed state mutation")
        key = entry[0]
        if not can_write(key):
            return _denied(f"state:write:{key}", f"changing $state.{key} needs the capability state:write:{key}")
        if len(entry) == 2:
            mutations.append({"key": key, "value": entry[1], "operation": "set"})
        else:
            mutations.append({"key": key, "operation": "delete"})
    segment.mutations = mutations
    return None


def _convert_events(raw: Any, caps: _Checks, segment: _Segment) -> dict[str, Any] | None:
    if type(raw) is not list:
        return error_dict(INTERNAL_ERROR, _MALFORMED)
    if len(raw) > MAX_EVENTS:
        return error_dict(RESOURCE_LIMIT, f"more than {MAX_EVENTS} events")
    events = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2 or not isinstance(entry[0], str):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed event")
        name, payload = entry
        if not caps.can_emit(name):
            return _denied(f"events:emit:{name}", f"emitting {name!r} needs the capability events:emit:{name}")
        events.append({"name": name, "payload": payload})
    segment.events = events
    return None


def _convert_views(raw: Any, caps: _Checks, segment: _Segment) -> dict[str, Any] | None:
    if type(raw) is not list:
        return error_dict(INTERNAL_ERROR, _MALFORMED)
    views = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 3:
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed view command")
        kind, target, args = entry
        if kind not in _VIEW_TYPES or not isinstance(target, str) or not isinstance(args, dict):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed view command")
        if not caps.can_update_view(target):
            message = f"updating view {target!r} needs the capability view:update:{target}"
            return _denied(f"view:update:{target}", message)
        views.append({"type": kind, "componentId": target, "args": args})
    segment.views = views
    return None


def _check_call(call: Any, caps: _Checks, extensions: dict[str, list[str]]) -> dict[str, Any] | None:
    if not isinstance(call, list) or len(call) != 4 or not isinstance(call[0], int):
        return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    alias, method, args = call[1], call[2], call[3]
    if not isinstance(alias, str) or not isinstance(method, str) or not isinstance(args, list):
        return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    if not caps.can_use_ext(alias):
        return _denied(f"ext:{alias}", f"$ext.{alias} needs the capability ext:{alias}")
    if method not in extensions.get(alias, ()):
        return error_dict(PERMISSION_DENIED, f"$ext.{alias}.{method} is not an available extension method")
    return None


def _denied(resource: str, message: str) -> dict[str, Any]:
    return error_dict(PERMISSION_DENIED, message, resource=resource)


def _calls(raw: Any) -> int:
    return raw if isinstance(raw, int) and raw > 0 else 0


def _count_calls(result: ExecutionResult, counts: list[int]) -> None:
    """Per-function sandbox API calls, as far as the result shows them."""
    counts[0] += len(result.events)
    counts[1] += len(result.logs)
    if result.suspension:
        counts[2] += 1
    for command in result.view_commands:
        counts[_VIEW_SLOT[command["type"]]] += 1


def _logs(raw: Any) -> list[dict[str, str]]:
    if not raw or not isinstance(raw, list):
        return []
    return [
        {"level": str(entry[0]), "message": str(entry[1])}
        for entry in raw
        if isinstance(entry, list) and len(entry) == 2
    ]


def _handler_stack(stack: str) -> tuple[dict[str, int] | None, str]:
    """First handler frame as a location, and the stack keeping only handler frames.

    Line 1 of the compiled source is the wrapper; handler line N is source line N + 1.
    """
    location: dict[str, int] | None = None
    kept: list[str] = []
    for line in stack.splitlines():
        match = _FRAME.search(line)
        if match is None:
            continue
        row = max(int(match.group(1)) - 1, 1)
        column = int(match.group(2))
        if location is None:
            location = {"line": row, "column": column}
        kept.append(_FRAME.sub(f"handler:{row}:{column}", line.rstrip()))
        if len(kept) >= _MAX_STACK_LINES:
            break
    return location, "\n".join(kept)


def _syntax_location(code: str, line: int) -> dict[str, int]:
    """Where a syntax error is, from QuickJS's line and a second parse for the column.

    QuickJS reports the right line but not a usable column inside the wrapper; the
    first error node tree-sitter finds on that line gives it. Past the end of the code
    (an unclosed construct), the error sits at the end of the last line.
    """
    lines = code.split("\n")
    if line > len(lines):
        return {"line": len(lines), "column": len(lines[-1].rstrip("\r")) + 1}
    text = lines[line - 1]
    column = len(text) - len(text.lstrip()) + 1
    try:
        from .capabilities import parse_handler_tree

        found = _first_error_on(parse_handler_tree(code).root_node, line)
        if found is not None:
            # tree-sitter columns count UTF-8 bytes.
            column = len(text.encode("utf-8")[:found].decode("utf-8", "ignore")) + 1
    except Exception:  # the column is a refinement; keep the estimate
        logger.debug("syntax error column lookup failed", exc_info=True)
    return {"line": line, "column": column}


def _any_syntax_error(code: str) -> dict[str, int] | None:
    """Location of the first syntax error tree-sitter sees anywhere in ``code``."""
    try:
        from .capabilities import parse_handler_tree

        stack = [parse_handler_tree(code).root_node]
        while stack:
            node = stack.pop()
            if node.type == "ERROR" or node.is_missing:
                row, byte_column = node.start_point
                lines = code.split("\n")
                if 1 <= row <= len(lines):
                    prefix = lines[row - 1].encode("utf-8")[:byte_column].decode("utf-8", "ignore")
                    return {"line": row, "column": len(prefix) + 1}
                return None
            if node.has_error or node.is_missing:
                stack.extend(reversed(node.children))
    except Exception:  # a location is a refinement
        logger.debug("syntax error lookup failed", exc_info=True)
    return None


def _first_error_on(root: Any, line: int) -> int | None:
    """Byte column of the first ERROR or MISSING node starting on ``line`` (tree rows = lines)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if (node.type == "ERROR" or node.is_missing) and node.start_point[0] == line:
            return int(node.start_point[1])
        if node.has_error or node.is_missing:
            stack.extend(reversed(node.children))
    return None


def _snippet(code: str, line: int) -> str | None:
    lines = code.split("\n")
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\r")[:200]
    return None


def _wrapper_label() -> str:
    """A fresh label for the block around a handler body (see compile in guest/glue.js)."""
    return "L" + secrets.token_hex(8)


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, ending with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    kept = limit - 48  # room for the marker, as in guest/glue.js
    return f"{text[:kept]}… [{len(text) - kept} more characters cut]"


_ANSWER_PARTS = {ANSWER_OK: ((1, "return value"), (2, "state write"), (3, "events"), (4, "view commands"), (5, "logs"))}
_ANSWER_PARTS[ANSWER_SUSPENDED] = ((1, "extension call"), *_ANSWER_PARTS[ANSWER_OK][1:])


def oversize_error(answer: list[Any], size: int) -> dict[str, Any]:
    """RESOURCE_LIMIT for an answer over MAX_RESULT_BYTES, naming its largest part as clients get it."""
    limit = byte_text(MAX_RESULT_BYTES)
    parts = []
    for index, name in _ANSWER_PARTS.get(answer[0], ()):
        try:
            parts.append((len(_encode(answer[index])), name))
        except (IndexError, TypeError, ValueError, RecursionError):
            continue
    largest, name = max(parts, default=(0, ""))
    if largest > MAX_RESULT_BYTES:
        return error_dict(RESOURCE_LIMIT, f"the {name} of {byte_text(largest)} is over the {limit} limit")
    return error_dict(RESOURCE_LIMIT, f"the result of {byte_text(size)} is over the {limit} limit")
