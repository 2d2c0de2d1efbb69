"""The public entry point: Runtime.execute / resume / check_syntax / stats / close."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import metrics
from .capabilities import CapabilitySet, parse_capability
from .engine import TICK_MS, GuestModule, guest_module
from .errors import (
    COMPILATION_ERROR,
    ERROR_CODES,
    INSTANCE_POISONING_CODES,
    INTERNAL_ERROR,
    INVALID_ARGS,
    INVALID_HANDLER,
    PERMISSION_DENIED,
    RESOURCE_LIMIT,
    GuestFault,
    RuntimeClosedError,
    error_dict,
)
from .execution import ERROR, SUCCESS, SUSPENDED, ExecutionContext, ExecutionResult
from .limits import MAX_CODE_BYTES, MAX_EVENTS, MAX_RESULT_BYTES, MAX_STATE_MUTATIONS, RuntimeConfig
from .pool import Pool
from .sandbox import Sandbox

logger = logging.getLogger("nexus.runtime")

_encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode
_FRAME = re.compile(r"<input>:(\d+):(\d+)")
_VIEW_TYPES = frozenset({"setFilter", "scrollTo", "focus"})
_HANDLER_ID_CACHE = 4096
_MAX_STACK_LINES = 12
_CHECK_ID = "!syntax-check"

_live_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


@dataclass
class _Suspension:
    sandbox: Sandbox
    context: ExecutionContext
    code: str
    call_id: int
    timeout_ms: int
    used_ms: float
    expires_at: float


@dataclass
class _Outcome:
    """A guest answer checked against the context, ready to become an ExecutionResult."""

    answer: dict[str, Any]
    error: dict[str, Any] | None = None


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
        self._limits_json = _encode([config.max_host_calls, MAX_STATE_MUTATIONS, MAX_EVENTS, MAX_RESULT_BYTES])
        self._handler_ids: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self._caps_json: dict[tuple[str, ...], tuple[str, bool]] = {}
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
        self._pool.warm()
        _live_runtimes.add(self)

    # ------------------------------------------------------------------ public API

    def execute(self, code: str, ctx: ExecutionContext, timeout_ms: int | None = None) -> ExecutionResult:
        """Run ``code`` (the body of an async function) in a sandbox for ``ctx``.

        Raises RuntimeBusyError when no instance frees up within ``acquire_timeout_ms``,
        TypeError/ValueError for misuse of the API; every handler problem is an error result.
        """
        started = time.perf_counter_ns()
        if not isinstance(ctx, ExecutionContext):
            raise TypeError("ctx must be an ExecutionContext")
        timeout = self._timeout(timeout_ms)
        self._check_open()
        handler_id, problem = self._handler_id(code)
        if problem is not None:
            return self._failed(problem, started)
        try:
            state_json = self._state_json(ctx, ctx.state)
            args_json = _encode(_plain(ctx.args))
            scope_json = _encode(_plain(ctx.scope)) if ctx.scope is not None else "{}"
            ext_json = _encode(ctx.extension_methods) if ctx.extension_methods else "{}"
        except (TypeError, ValueError, RecursionError) as exc:
            return self._failed(error_dict(INVALID_ARGS, f"state, args and scope must be JSON data: {exc}"), started)
        sandbox = self._pool.acquire(ctx.panel_id, self.config.acquire_timeout_ms / 1000)
        cache_hit = sandbox.has_compiled(handler_id)
        parts = ['{"h":"', handler_id, '"']
        if not cache_hit:
            parts += [',"c":', _encode(code)]
        if sandbox.drops:
            parts += [',"d":', _encode(sandbox.drops)]
            sandbox.drops = []
        seed = sandbox.take_seed()
        if seed is not None:
            parts += [',"rs":', _encode(seed)]
        parts += [',"s":', state_json, ',"a":', args_json, ',"sc":', scope_json, ',"cp":', self._caps(ctx)[0],
                  ',"xm":', ext_json, ',"lm":', self._limits_json, "}"]
        request = "".join(parts).encode("ascii")
        answer, sandbox_ms = self._run(sandbox, request, timeout, resume=False)
        if not cache_hit and not sandbox.dirty and not _is_compile_failure(answer):
            sandbox.note_compiled(handler_id)
        return self._conclude(sandbox, answer, ctx, code, timeout, sandbox_ms, started, cache_hit)

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
        self._check_open()
        try:
            reply_parts = {"ok": bool(ok), "v": _plain(value), "e": None if error is None else str(error)}
            if state is not None and not isinstance(state, dict):
                raise TypeError("state must be a dict")
        except (TypeError, ValueError) as exc:
            return self._failed(error_dict(INVALID_ARGS, f"resume arguments must be JSON data: {exc}"), started)
        suspension = self._take_suspension(suspension_id)
        if suspension is None:
            return self._failed(
                error_dict(INVALID_ARGS, "no such suspension: unknown id, already resumed, cancelled or expired"),
                started,
            )
        ctx = suspension.context
        try:
            reply_parts["id"] = suspension.call_id
            payload = dict(reply_parts)
            state_json = self._state_json(ctx, state) if state is not None else "null"
            request = ('{"s":' + state_json + "," + _encode(payload)[1:]).encode("ascii")
        except (TypeError, ValueError, RecursionError) as exc:
            self._pool.discard(suspension.sandbox)
            return self._failed(error_dict(INVALID_ARGS, f"resume arguments must be JSON data: {exc}"), started)
        remaining = max(suspension.timeout_ms - suspension.used_ms, 1.0)
        answer, sandbox_ms = self._run(suspension.sandbox, request, remaining, resume=True)
        return self._conclude(
            suspension.sandbox,
            answer,
            ctx,
            suspension.code,
            suspension.timeout_ms,
            suspension.used_ms + sandbox_ms,
            started,
            None,
        )

    async def aexecute(self, code: str, ctx: ExecutionContext, timeout_ms: int | None = None) -> ExecutionResult:
        """``execute`` on a worker thread, so the event loop never blocks."""
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
        loop = asyncio.get_running_loop()
        call = functools.partial(self.resume, suspension_id, ok=ok, value=value, error=error, state=state)
        return await loop.run_in_executor(self._worker_pool(), call)

    def cancel(self, suspension_id: str) -> bool:
        """Abandon a suspended execution and free its instance; False if there was none."""
        suspension = self._take_suspension(suspension_id)
        if suspension is None:
            return False
        suspension.sandbox.cancel()
        self._pool.discard(suspension.sandbox)
        return True

    def check_syntax(self, code: str) -> dict[str, Any] | None:
        """Compile ``code`` without running it: None when it compiles, else a COMPILATION_ERROR dict."""
        _, problem = self._handler_id(code)
        if problem is not None:
            return problem
        self._check_open()
        sandbox = self._pool.acquire(None, self.config.acquire_timeout_ms / 1000)
        request = (
            '{"h":"' + _CHECK_ID + '","k":1,"c":' + _encode(code) + ',"s":{},"a":{},"cp":{"r":[],"w":[],"e":[],'
            '"v":[],"x":[]},"lm":' + self._limits_json + "}"
        ).encode("ascii")
        answer, _ = self._run(sandbox, request, float(self.config.timeout_ms), resume=False)
        if answer.get("breakout"):
            sandbox.dirty = True
        self._pool.release(sandbox)
        if answer.get("st") == "ok":
            return None
        return self._error(answer.get("er"), code)

    def stats(self) -> dict[str, Any]:
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
        _live_runtimes.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ execution

    def _run(self, sandbox: Sandbox, request: bytes, timeout_ms: float, resume: bool) -> tuple[dict[str, Any], float]:
        """Send one request; a failed instance yields an error answer and is marked dirty."""
        ticks = int(timeout_ms // TICK_MS) + 2
        ticker = self._guest.ticker
        ticker.enter()
        begin = time.perf_counter()
        try:
            answer = sandbox.resume(request, ticks) if resume else sandbox.start(request, ticks)
        except GuestFault as fault:
            answer = {"st": "err", "er": fault.to_error()}
        except Exception as exc:  # noqa: BLE001 - the caller gets INTERNAL_ERROR, the instance is dropped
            logger.exception("sandbox failure")
            sandbox.dirty = True
            answer = {"st": "err", "er": error_dict(INTERNAL_ERROR, f"sandbox failure: {exc}")}
        finally:
            ticker.exit()
        return answer, (time.perf_counter() - begin) * 1000

    def _conclude(
        self,
        sandbox: Sandbox,
        answer: dict[str, Any],
        ctx: ExecutionContext,
        code: str,
        timeout_ms: int,
        used_ms: float,
        started: int,
        cache_hit: bool | None,
    ) -> ExecutionResult:
        outcome = self._verify(answer, ctx)
        if outcome.error is not None and outcome.error["code"] in INSTANCE_POISONING_CODES:
            sandbox.dirty = True
        if answer.get("breakout"):
            sandbox.dirty = True
        host_calls = _host_calls(answer.get("hc"))
        memory = sandbox.memory_size()
        result = ExecutionResult(status=ERROR, logs=_logs(answer.get("lg")))
        if outcome.error is not None:
            result.error = self._error(outcome.error, code)
            self._pool.release(sandbox)
        elif answer["st"] == "sus":
            self._fill(result, answer)
            result.status = SUSPENDED
            result.suspension = self._suspend(sandbox, answer["x"], ctx, code, timeout_ms, used_ms)
        else:
            self._fill(result, answer)
            result.status = SUCCESS
            result.return_value = answer.get("rv")
            self._pool.release(sandbox)
        duration_us = (time.perf_counter_ns() - started) // 1000
        result.metrics = {
            "duration_us": duration_us,
            "memory_used_bytes": memory,
            "memory_peak_bytes": memory,
            "host_calls": sum(host_calls.values()),
            "cache_hit": cache_hit is not False,
        }
        self._record(result, duration_us, host_calls, cache_hit)
        return result

    @staticmethod
    def _fill(result: ExecutionResult, answer: dict[str, Any]) -> None:
        result.state_mutations = answer.get("mu") or []
        result.events = answer.get("ev") or []
        result.view_commands = answer.get("vc") or []

    def _verify(self, answer: dict[str, Any], ctx: ExecutionContext) -> _Outcome:
        """Re-check a guest answer against the capabilities: the glue is not trusted."""
        status = answer.get("st")
        if status == "err":
            error = answer.get("er")
            if not isinstance(error, dict):
                error = error_dict(INTERNAL_ERROR, "the sandbox reported a malformed error")
            return _Outcome(answer, error)
        if status not in ("ok", "sus"):
            return _Outcome(answer, error_dict(INTERNAL_ERROR, f"unexpected sandbox answer {status!r}"))
        problem = _check_answer(answer, ctx.capability_set, ctx.extension_methods, self.config.max_host_calls)
        return _Outcome(answer, problem)

    def _suspend(
        self,
        sandbox: Sandbox,
        call: dict[str, Any],
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
            call_id=int(call["id"]),
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
        return {
            "suspension_id": suspension_id,
            "extension": call["extension"],
            "method": call["method"],
            "args": call.get("args") or [],
        }

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
                upcoming = min((r.expires_at for r in self._suspensions.values()), default=now + 60)
                if not expired:
                    self._susp_cond.wait(max(upcoming - now, 0.01))
            for record in expired:
                logger.info("suspended execution expired; its instance is freed")
                self._pool.discard(record.sandbox)

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")

    def _timeout(self, timeout_ms: int | None) -> int:
        if timeout_ms is None:
            return self.config.timeout_ms
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
            raise ValueError("timeout_ms must be a positive number of milliseconds")
        return int(timeout_ms)

    def _handler_id(self, code: object) -> tuple[str, dict[str, Any] | None]:
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

    def _caps(self, ctx: ExecutionContext) -> tuple[str, bool]:
        key = tuple(ctx.capabilities)
        cached = self._caps_json.get(key)
        if cached is None:
            cached = _caps_payload(ctx.capability_set)
            if len(self._caps_json) >= 1024:
                self._caps_json.clear()
            self._caps_json[key] = cached
        return cached

    def _state_json(self, ctx: ExecutionContext, state: Any) -> str:
        if not isinstance(state, dict):
            state = dict(state)
        if not self._caps(ctx)[1]:
            can_read = ctx.capability_set.can_read
            state = {key: value for key, value in state.items() if isinstance(key, str) and can_read(key)}
        return _encode(state)

    def _error(self, raw: Any, code: str) -> dict[str, Any]:
        """Normalize a guest error: known code, message, handler-relative location and stack."""
        if not isinstance(raw, dict):
            raw = {}
        error_code = raw.get("code")
        if error_code not in ERROR_CODES:
            error_code = INTERNAL_ERROR
        message = raw.get("message")
        error = error_dict(error_code, message if isinstance(message, str) and message else error_code)
        stack = raw.get("stack")
        if isinstance(stack, str):
            location, clean = _handler_stack(stack)
            if location is not None:
                error["location"] = location
                snippet = _snippet(code, location["line"])
                if snippet is not None:
                    error["snippet"] = snippet
            if clean:
                error["stack"] = clean
        resource = raw.get("resource")
        if isinstance(resource, str):
            error["resource"] = resource
        return error

    def _failed(self, error: dict[str, Any], started: int) -> ExecutionResult:
        duration_us = (time.perf_counter_ns() - started) // 1000
        result = ExecutionResult(status=ERROR, error=error)
        result.metrics["duration_us"] = duration_us
        self._record(result, duration_us, {}, None)
        return result

    def _record(
        self, result: ExecutionResult, duration_us: int, host_calls: dict[str, int], cache_hit: bool | None
    ) -> None:
        """Count an execution; ``cache_hit`` is None when it never reached an instance."""
        code = result.error["code"] if result.error else ""
        with self._stats_lock:
            self._executions += 1
            self._duration_us_total += duration_us
            if result.error:
                self._errors += 1
            if cache_hit is True:
                self._cache_hits += 1
            elif cache_hit is False:
                self._cache_misses += 1
        metrics.HANDLER_EXECUTIONS_TOTAL.labels(result.status, code).inc()
        metrics.HANDLER_DURATION_SECONDS.observe(duration_us / 1e6)
        if code:
            metrics.ERRORS_TOTAL.labels(code).inc()
        for function, count in host_calls.items():
            metrics.HOST_CALLS_TOTAL.labels(function).inc(count)

    def _worker_pool(self) -> ThreadPoolExecutor:
        self._check_open()
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.max_instances, thread_name_prefix="nexus-sandbox"
                )
            return self._executor


# ---------------------------------------------------------------------- module helpers


def _check_code(code: object) -> dict[str, Any] | None:
    if not isinstance(code, str):
        return error_dict(INVALID_HANDLER, "handler code must be a string")
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
    """Make mappings plain dicts so the JSON encoder accepts them (shallow)."""
    if value is None or isinstance(value, dict | list | str | int | float | bool):
        return value
    if isinstance(value, tuple):
        return list(value)
    try:
        return dict(value)
    except (TypeError, ValueError):
        return value


def _caps_payload(caps: CapabilitySet) -> tuple[str, bool]:
    groups: dict[str, list[str]] = {"r": [], "w": [], "e": [], "v": [], "x": []}
    kinds = {"state:read": "r", "events:emit": "e", "view:update": "v", "ext": "x"}
    for token in caps.tokens:
        capability = parse_capability(token)
        if capability.kind == "state:write":
            groups["w"].append(capability.scope)
            groups["r"].append(capability.scope)
        else:
            groups[kinds[capability.kind]].append(capability.scope)
    return _encode(groups), "*" in groups["r"]


def _is_compile_failure(answer: dict[str, Any]) -> bool:
    error = answer.get("er")
    return answer.get("st") == "err" and isinstance(error, dict) and error.get("code") == COMPILATION_ERROR


def _check_answer(
    answer: dict[str, Any], caps: CapabilitySet, extensions: dict[str, list[str]], max_host_calls: int
) -> dict[str, Any] | None:
    mutations = answer.get("mu")
    events = answer.get("ev")
    views = answer.get("vc")
    if not isinstance(mutations, list) or not isinstance(events, list) or not isinstance(views, list):
        return error_dict(INTERNAL_ERROR, "the sandbox answer is malformed")
    if len(mutations) > MAX_STATE_MUTATIONS:
        return error_dict(RESOURCE_LIMIT, f"more than {MAX_STATE_MUTATIONS} state mutations")
    if len(events) > MAX_EVENTS:
        return error_dict(RESOURCE_LIMIT, f"more than {MAX_EVENTS} events")
    if sum(_host_calls(answer.get("hc")).values()) > max_host_calls:
        return error_dict(RESOURCE_LIMIT, f"more than {max_host_calls} sandbox API calls")
    for mutation in mutations:
        key = mutation.get("key") if isinstance(mutation, dict) else None
        operation = mutation.get("operation") if isinstance(mutation, dict) else None
        if not isinstance(key, str) or operation not in ("set", "delete") or (operation == "set" and "value" not in mutation):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed state mutation")
        if not caps.can_write(key):
            return _denied(f"state:write:{key}", f"changing $state.{key} needs the capability state:write:{key}")
    for event in events:
        name = event.get("name") if isinstance(event, dict) else None
        if not isinstance(name, str):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed event")
        if not caps.can_emit(name):
            return _denied(f"events:emit:{name}", f"emitting {name!r} needs the capability events:emit:{name}")
    for command in views:
        target = command.get("componentId") if isinstance(command, dict) else None
        if not isinstance(target, str) or command.get("type") not in _VIEW_TYPES or not isinstance(command.get("args"), dict):
            return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed view command")
        if not caps.can_update_view(target):
            return _denied(f"view:update:{target}", f"updating view {target!r} needs the capability view:update:{target}")
    if answer.get("st") == "sus":
        return _check_call(answer.get("x"), caps, extensions)
    return None


def _check_call(call: Any, caps: CapabilitySet, extensions: dict[str, list[str]]) -> dict[str, Any] | None:
    if not isinstance(call, dict) or not isinstance(call.get("id"), int):
        return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    alias, method = call.get("extension"), call.get("method")
    if not isinstance(alias, str) or not isinstance(method, str) or not isinstance(call.get("args"), list):
        return error_dict(INTERNAL_ERROR, "the sandbox reported a malformed extension call")
    if not caps.can_use_ext(alias):
        return _denied(f"ext:{alias}", f"$ext.{alias} needs the capability ext:{alias}")
    if method not in extensions.get(alias, ()):
        return error_dict(PERMISSION_DENIED, f"$ext.{alias}.{method} is not an available extension method")
    return None


def _denied(resource: str, message: str) -> dict[str, Any]:
    return error_dict(PERMISSION_DENIED, message, resource=resource)


def _host_calls(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    calls: dict[str, int] = {}
    for name, count in raw.items():
        if isinstance(count, int) and count > 0:
            label = name if name in metrics.HOST_FUNCTIONS else "other"
            calls[label] = calls.get(label, 0) + count
    return calls


def _logs(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    return [
        {"level": str(entry.get("level", "info")), "message": str(entry.get("message", ""))}
        for entry in raw
        if isinstance(entry, dict)
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


def _snippet(code: str, line: int) -> str | None:
    lines = code.split("\n")
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\r")[:200]
    return None


def live_runtimes() -> list[Runtime]:
    return list(_live_runtimes)


def _instances(state: str) -> float:
    total = 0
    for runtime in live_runtimes():
        counts = runtime._pool.counts()
        with runtime._susp_cond:
            suspended = len(runtime._suspensions)
        if state == "idle":
            total += counts["idle"]
        elif state == "busy":
            total += counts["checked_out"]
        else:
            total += suspended
    return float(total)


def _hit_rate() -> float:
    hits = misses = 0
    for runtime in live_runtimes():
        hits += runtime._cache_hits
        misses += runtime._cache_misses
    return hits / (hits + misses) if hits + misses else 0.0


def _memory_peak() -> float:
    return float(max((runtime._pool.peak_memory for runtime in live_runtimes()), default=0))


for _state in ("idle", "busy", "suspended"):
    metrics.RUNTIME_INSTANCES.labels(_state).set_function(functools.partial(_instances, _state))
metrics.WASM_CACHE_HIT_RATE.set_function(_hit_rate)
metrics.RUNTIME_MEMORY_PEAK_BYTES.set_function(_memory_peak)
