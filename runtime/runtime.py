"""The public entry point: Runtime.execute / resume / cancel / check_syntax / stats / close."""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from . import blobs, protocol, telemetry
from .answers import GuestAnswer, oversize_error, read_answer
from .diagnostics import caller_error
from .engine import STEPPER_PATH, TICK_MS, GuestModule, guest_module
from .errors import (
    INSTANCE_POISONING_CODES,
    CodedError,
    ErrorCode,
    ErrorInfo,
    GuestFault,
    RuntimeBusyError,
    RuntimeClosedError,
    error_dict,
)
from .execution import ERROR, SUCCESS, SUSPENDED, ExecutionContext, ExecutionResult, SuspensionInfo
from .handlers import identify
from .hibernation import Baseline, Lodging
from .json_depth import MAX_JSON_DEPTH, exceeds_depth
from .limits import (
    CHECK_TIMEOUT_MS,
    MAX_EVENTS,
    MAX_RESULT_BYTES,
    MAX_STATE_MUTATIONS,
    RuntimeConfig,
)
from .pool import Pool
from .protocol import ANSWER_ERROR, ANSWER_SUSPENDED
from .sandbox import Sandbox
from .suspensions import Suspension, Suspensions

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("nexus.runtime")

# Syntax checks running at once, each in an instance of its own.
_CONCURRENT_CHECKS = 2


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
        limits = [config.max_host_calls, MAX_STATE_MUTATIONS, MAX_EVENTS, MAX_RESULT_BYTES]
        self._limits_field = protocol.field(protocol.LIMITS, protocol.encode(limits))
        self._suspensions = Suspensions(_drop_suspension)
        self._baseline: Baseline | None = None
        self._baseline_lock = threading.Lock()
        self.guest_build = blobs.guest_build(self._guest.wasm_sha256, STEPPER_PATH.read_bytes())
        self._counters = telemetry.ExecutionCounters()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closed = False
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
        handler_id, problem = identify(code)
        if problem is not None:
            return self._failed(problem, started)
        caps_json, reads_all = protocol.grant_payload(ctx.capability_set)
        try:
            args = ctx.args
            state_json = protocol.encode(protocol.readable_state(ctx, ctx.state, reads_all))
            args_json = protocol.encode(args if type(args) is dict else dict(args))
            scope_json = protocol.encode(dict(ctx.scope)) if ctx.scope else None
        except (TypeError, ValueError, RecursionError) as exc:
            problem = error_dict(ErrorCode.INVALID_ARGS, f"state, args and scope must be JSON data: {exc}")
            return self._failed(problem, started)
        sandbox = self._pool.acquire(ctx.panel_id, self.config.acquire_timeout_ms / 1000, tenant=ctx.tenant)
        if sandbox.lodger is not None:
            sandbox.vacate()  # a suspended execution still lodged here moves out first
        handler_slot, compiled = sandbox.handlers.lookup(handler_id)
        grant_slot, granted = sandbox.capabilities.lookup(ctx.grant_key)
        extra = []
        if not compiled:
            extra.append(protocol.code_fields(code))
        if not granted:
            extra.append(protocol.field(protocol.CAPABILITIES, caps_json))
            extra.append(protocol.field(protocol.EXTENSION_METHODS, ctx.grant_key[1]))
            extra.append(self._limits_field)
        if scope_json is not None:
            extra.append(protocol.field(protocol.SCOPE, scope_json))
        if sandbox.needs_seed:
            extra.append(protocol.field(protocol.SEED, protocol.encode(sandbox.take_seed())))
        # The instance keeps the arguments it last ran with: the same ones are not sent again.
        same_args = args_json == sandbox.last_args
        request = protocol.run_request(handler_slot, grant_slot, state_json, None if same_args else args_json, extra)
        answer = self._run(sandbox, request, timeout, timeout)
        sandbox.last_args = None if answer[0] == ANSWER_ERROR else args_json
        # Time used counts against the handler's budget across resumes; the host's own
        # few microseconds around the sandbox call are included.
        used_ms = (time.perf_counter_ns() - started) / 1e6
        read = read_answer(answer, ctx, self._max_calls)
        if not compiled and read.error is not None and read.error.get("code") == ErrorCode.COMPILATION_ERROR:
            sandbox.handlers.abandon(handler_id)
        return self._conclude(sandbox, read, ctx, code, timeout, used_ms, started, compiled)

    def resume(
        self,
        suspension_id: str,
        ok: bool = True,
        value: Any = None,
        error: str | None = None,
        state: dict[str, Any] | None = None,
        error_code: str | None = None,
    ) -> ExecutionResult:
        """Continue a suspended execution with the extension call's outcome.

        ``ok=False`` makes the handler's ``await`` throw an Error carrying ``error`` (and
        ``error_code`` as its ``code``, e.g. TIMEOUT); ``state``, when given, is the panel's
        committed state that ``$state`` shows from now on. The execution continues in any
        free instance: its guest state is put back there first.
        """
        started = time.perf_counter_ns()
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        if ok and exceeds_depth(value):
            ok, value, error = False, None, f"the extension's answer is nested deeper than {MAX_JSON_DEPTH} levels"
        try:
            value_json = protocol.encode(protocol.plain(value))
            error_json = protocol.encode(None if error is None else str(error))
            code_json = None if ok or error_code is None else protocol.encode(str(error_code))
            if state is not None and not isinstance(state, dict):
                raise TypeError("state must be a dict")
        except (TypeError, ValueError, RecursionError) as exc:
            problem = error_dict(ErrorCode.INVALID_ARGS, f"resume arguments must be JSON data: {exc}")
            return self._failed(problem, started)
        suspension = self._suspensions.take(suspension_id)
        if suspension is None:
            return self._failed(self._missing(suspension_id), started)
        ctx = suspension.context
        try:
            reads_all = protocol.grant_payload(ctx.capability_set)[1]
            state_json = "null" if state is None else protocol.encode(protocol.readable_state(ctx, state, reads_all))
        except (TypeError, ValueError, RecursionError) as exc:
            self._suspensions.put_back(str(suspension_id), suspension)
            return self._failed(error_dict(ErrorCode.INVALID_ARGS, f"state must be JSON data: {exc}"), started)
        try:
            sandbox = self._pool.acquire(
                ctx.panel_id, self.config.acquire_timeout_ms / 1000, tenant=ctx.tenant, overwrites=True
            )
        except BaseException:
            self._suspensions.put_back(str(suspension_id), suspension)
            raise
        try:
            suspension.lodging.wake(sandbox)
        except Exception as exc:
            logger.exception("could not restore a suspended execution")
            sandbox.dirty = True
            self._pool.release(sandbox)
            message = exc.message if isinstance(exc, CodedError) else f"the suspended state was not restored: {exc}"
            return self._failed(error_dict(ErrorCode.INTERNAL_ERROR, message), started)
        request = protocol.resume_request(suspension.call_id, ok, value_json, error_json, state_json, code_json)
        return self._continue(sandbox, suspension, request, started)

    def _continue(self, sandbox: Sandbox, suspension: Suspension, request: bytes, started: int) -> ExecutionResult:
        remaining = max(suspension.timeout_ms - suspension.used_ms, 1.0)
        began = time.perf_counter_ns()
        answer = self._run(sandbox, request, remaining, suspension.timeout_ms, resume=True)
        used = suspension.used_ms + (time.perf_counter_ns() - began) / 1e6
        read = read_answer(answer, suspension.context, self._max_calls)
        limit = suspension.timeout_ms
        return self._conclude(sandbox, read, suspension.context, suspension.code, limit, used, started, None)

    def _missing(self, suspension_id: object) -> ErrorInfo:
        if self._suspensions.expired(suspension_id):
            return error_dict(ErrorCode.TIMEOUT, "the suspended execution passed its deadline and was dropped")
        return error_dict(ErrorCode.INVALID_ARGS, "no such suspension: unknown id, already resumed or cancelled")

    # ------------------------------------------------------------------ moving suspensions

    def set_suspension_deadline(self, suspension_id: str, seconds: float) -> bool:
        """Let a suspension wait ``seconds`` from now (e.g. its extension call's timeout);
        False when there is no such suspension."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError("seconds must be a positive number")
        return self._suspensions.set_deadline(suspension_id, float(seconds))

    def export_suspension(self, suspension_id: str, key: bytes | None = None, keep: bool = False) -> bytes:
        """The suspension as a self-contained blob, signed with ``key`` (or the config's
        ``suspension_key``); it leaves this runtime unless ``keep``.

        CodedError(INVALID_ARGS) when there is no such suspension or no key.
        """
        signing_key = self._key(key)
        record = self._suspensions.peek(suspension_id) if keep else self._suspensions.take(suspension_id)
        if record is None:
            raise CodedError(ErrorCode.INVALID_ARGS, self._missing(suspension_id)["message"])
        item = blobs.Exported(
            context=record.context,
            code=record.code,
            call_id=record.call_id,
            call=record.call,
            timeout_ms=record.timeout_ms,
            used_ms=record.used_ms,
            remaining_s=record.expires_at - time.monotonic(),
            snapshot=record.lodging.take_snapshot(),
            tables=record.lodging.tables,
        )
        blob = blobs.encode(item, self.guest_build, self._baseline_of(), signing_key)
        if not keep:
            record.lodging.drop()
        return blob

    def import_suspension(self, blob: bytes, key: bytes | None = None) -> str:
        """Make an exported suspension resumable here; returns its new id.

        CodedError(INVALID_ARGS) for a blob of another guest build, or one damaged,
        truncated or signed with another key; CodedError(RESOURCE_LIMIT) when
        ``max_suspended`` executions wait already.
        """
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        item = blobs.decode(blob, self.guest_build, self._baseline_of(), self._key(key), self.config.memory_limit_bytes)
        record = Suspension(
            context=item.context,
            code=item.code,
            call_id=item.call_id,
            call=item.call,
            timeout_ms=item.timeout_ms,
            used_ms=item.used_ms,
            expires_at=time.monotonic() + item.remaining_s,
            lodging=Lodging.of_snapshot(item.snapshot, item.tables, self._baseline_of),
        )
        suspension_id = self._suspensions.add(record, self.config.max_suspended)
        if suspension_id is None:
            raise CodedError(ErrorCode.RESOURCE_LIMIT, self._over_cap_message())
        return suspension_id

    def _key(self, key: bytes | None) -> bytes:
        chosen = self.config.suspension_key if key is None else key
        if not isinstance(chosen, bytes) or len(chosen) < 16:
            raise CodedError(ErrorCode.INVALID_ARGS, "exported suspensions need a key of at least 16 bytes")
        return chosen

    def _baseline_of(self) -> Baseline:
        baseline = self._baseline
        if baseline is None:
            with self._baseline_lock:
                if self._baseline is None:
                    self._baseline = Baseline(self._guest, self.config.memory_limit_bytes)
                baseline = self._baseline
        return baseline

    def _over_cap_message(self) -> str:
        return f"more than {self.config.max_suspended} handlers are waiting on extension calls in this process"

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
        error_code: str | None = None,
    ) -> ExecutionResult:
        """``resume`` on a worker thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        call = functools.partial(
            self.resume, suspension_id, ok=ok, value=value, error=error, state=state, error_code=error_code
        )
        return await loop.run_in_executor(self._worker_pool(), call)

    def cancel(self, suspension_id: str) -> bool:
        """Abandon a suspended execution; False if there was none.

        Nothing of it runs again: its snapshot is dropped, and an instance it is still lodged
        in runs the next execution as usual (the handler's leftover jobs are never resumed).
        """
        suspension = self._suspensions.take(suspension_id)
        if suspension is None:
            return False
        suspension.lodging.drop()
        return True

    def check_syntax(self, code: str) -> ErrorInfo | None:
        """Compile ``code`` without running it: None when it compiles, else a COMPILATION_ERROR dict.

        The location is relative to the first line of ``code``.
        """
        _, problem = identify(code)
        if problem is not None:
            return problem
        if self._closed:
            raise RuntimeClosedError("the runtime is closed")
        limit = min(self.config.timeout_ms, CHECK_TIMEOUT_MS)
        # A pristine instance of its own for every check, closed after it: no panel's
        # instance is touched and nothing of one check reaches the next.
        if not self._checkers.acquire(timeout=self.config.acquire_timeout_ms / 1000):
            raise RuntimeBusyError("too many syntax checks at once")
        try:
            checker = Sandbox(self._guest, self.config.memory_limit_bytes)
            try:
                answer = self._run(checker, protocol.check_request(code), limit, limit)
            finally:
                checker.close()
        finally:
            self._checkers.release()
        read = read_answer(answer, None, self._max_calls)
        return None if read.error is None else caller_error(read.error, code)

    def gauge_figures(self) -> dict[str, float]:
        """The instantaneous figures behind the runtime gauges of ``runtime.metrics``."""
        counts = self._pool.counts()
        return {
            "idle": counts["idle"],
            "busy": counts["checked_out"],
            "waiting": counts["waiting"],
            "suspended": len(self._suspensions),
            "cache_hits": self._counters.cache_hits,
            "cache_misses": self._counters.cache_misses,
            "memory_peak_bytes": self._pool.peak_memory,
        }

    def stats(self) -> dict[str, Any]:
        """Pool, cache, duration and memory figures of this runtime."""
        counts = self._pool.counts()
        totals = self._counters.totals()
        lookups = totals.cache_hits + totals.cache_misses
        memory = sum(self._pool.memory_bytes.values())
        return {
            "executions": totals.executions,
            "errors": totals.errors,
            "active_instances": counts["checked_out"],
            "waiting_callers": counts["waiting"],
            "waiting_tenants": counts["waiting_tenants"],
            "available_instances": counts["idle"],
            "total_instances": counts["total"],
            "max_instances": self.config.max_instances,
            "min_instances": self.config.min_instances,
            "suspended": len(self._suspensions),
            "cache_hits": totals.cache_hits,
            "cache_misses": totals.cache_misses,
            "cache_hit_rate": totals.cache_hits / lookups if lookups else 0.0,
            "avg_duration_us": totals.duration_us / totals.executions if totals.executions else 0.0,
            "memory_bytes": memory,
            "memory_used_bytes": memory,
            "memory_peak_bytes": self._pool.peak_memory,
            "memory_limit_bytes": self.config.memory_limit_bytes,
            "instances_created": self._pool.created,
            "instances_discarded": self._pool.discarded,
            "instances_reset": self._pool.resets,
            "module_source": self._guest.source,
        }

    def flush_metrics(self) -> None:
        """Apply the buffered execution figures to the Prometheus metrics (``runtime.metrics``)."""
        from . import metrics

        outcomes, buckets, seconds, calls = self._counters.take_pending()
        for (status, code), count in outcomes.items():
            metrics.HANDLER_EXECUTIONS_TOTAL.labels(status, code).inc(count)
            if code:
                metrics.ERRORS_TOTAL.labels(code).inc(count)
        if any(buckets):
            metrics.add_durations(buckets, seconds, metrics.HANDLER_DURATION_SECONDS.observe)
        for index, count in enumerate(calls):
            if count:
                metrics.HOST_CALLS_TOTAL.labels(telemetry.HOST_FUNCTIONS[index]).inc(count)

    def close(self) -> None:
        """Drop suspended executions, close every instance and the worker threads."""
        if self._closed:
            return
        self._closed = True
        for suspension in self._suspensions.close():
            suspension.lodging.drop()
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
            if fault.code == ErrorCode.TIMEOUT:
                error["message"] = f"the handler ran past its limit of {int(limit_ms)} ms"
            return [ANSWER_ERROR, error, [], 0]
        except Exception as exc:  # the caller gets INTERNAL_ERROR, the instance is dropped
            logger.exception("sandbox failure")
            sandbox.dirty = True
            return [ANSWER_ERROR, error_dict(ErrorCode.INTERNAL_ERROR, f"sandbox failure: {exc}"), [], 0]
        if sandbox.answer_size > MAX_RESULT_BYTES and answer[0] != ANSWER_ERROR:
            return [ANSWER_ERROR, oversize_error(answer, sandbox.answer_size), [], 0]
        return answer

    def _conclude(
        self,
        sandbox: Sandbox,
        read: GuestAnswer,
        ctx: ExecutionContext,
        code: str,
        timeout_ms: int,
        used_ms: float,
        started: int,
        cache_hit: bool | None,
    ) -> ExecutionResult:
        error = read.error
        memory = sandbox.memory_size()
        if sandbox.exhausted_memory(memory) and (error is None or error.get("code") == ErrorCode.EXECUTION_ERROR):
            # The handler caught an out-of-memory error (or failed because of it).
            error = read.error = error_dict(
                ErrorCode.MEMORY_LIMIT, f"the handler used up its memory limit of {self.config.memory_limit_mb} MiB"
            )
        if read.discard or (error is not None and error.get("code") in INSTANCE_POISONING_CODES):
            sandbox.dirty = True
        figures = {
            "duration_us": 0,
            "memory_used_bytes": memory,
            "memory_peak_bytes": memory,
            "host_calls": read.calls,
            "cache_hit": cache_hit is not False,
        }
        logs = read.logs or []
        if error is not None:
            result = ExecutionResult(status=ERROR, error=caller_error(error, code), metrics=figures, logs=logs)
            self._pool.release(sandbox, memory)
            if error.get("code") == ErrorCode.INTERNAL_ERROR:
                logger.warning("sandbox failure in %s/%s: %s", ctx.panel_id, ctx.handler_name, error.get("message"))
        elif read.kind == ANSWER_SUSPENDED:
            suspension = self._suspend(sandbox, read.call or [], ctx, code, timeout_ms, used_ms)
            if suspension is None:
                # Too many wait already: the handler's await throws instead, in this instance.
                read, used_ms = self._refuse_wait(sandbox, read, ctx, timeout_ms, used_ms)
                return self._conclude(sandbox, read, ctx, code, timeout_ms, used_ms, started, cache_hit)
            result = ExecutionResult(
                status=SUSPENDED,
                state_mutations=read.mutations or [],
                events=read.events or [],
                view_commands=read.views or [],
                suspension=suspension,
                metrics=figures,
                logs=logs,
            )
            # Its guest state stays lodged in the instance until the pool needs it.
            self._pool.release(sandbox, memory)
        else:
            result = ExecutionResult(
                status=SUCCESS,
                return_value=read.return_value,
                state_mutations=read.mutations or [],
                events=read.events or [],
                view_commands=read.views or [],
                metrics=figures,
                logs=logs,
            )
            self._pool.release(sandbox, memory)
        duration_us = (time.perf_counter_ns() - started) // 1000
        figures["duration_us"] = duration_us
        self._counters.record(result, duration_us, cache_hit)
        if logger.isEnabledFor(logging.DEBUG):
            outcome = result.error["code"] if result.error else result.status
            logger.debug("executed %s on %s: %s in %d us", ctx.handler_name, ctx.panel_id, outcome, duration_us)
        return result

    def _suspend(
        self, sandbox: Sandbox, call: list[Any], ctx: ExecutionContext, code: str, timeout_ms: int, used_ms: float
    ) -> SuspensionInfo | None:
        """Register the suspension, lodged in ``sandbox``; None when ``max_suspended`` wait already."""
        pending = [call[protocol.CALL_ALIAS], call[protocol.CALL_METHOD], call[protocol.CALL_ARGS]]
        record = Suspension(
            context=ctx,
            code=code,
            call_id=int(call[protocol.CALL_ID]),
            call=pending,
            timeout_ms=timeout_ms,
            used_ms=used_ms,
            expires_at=time.monotonic() + self.config.suspension_ttl_s,
            lodging=Lodging.lodge(sandbox, self._baseline_of),
        )
        suspension_id = self._suspensions.add(record, self.config.max_suspended)
        if suspension_id is None:
            record.lodging.unlodge()
            return None
        return {"suspension_id": suspension_id, "extension": pending[0], "method": pending[1], "args": pending[2]}

    def _refuse_wait(
        self, sandbox: Sandbox, read: GuestAnswer, ctx: ExecutionContext, timeout_ms: int, used_ms: float
    ) -> tuple[GuestAnswer, float]:
        """Resume a suspension that could not be registered with a RESOURCE_LIMIT error; the
        answer carries what the handler did before and after its await."""
        call_id = int((read.call or [0])[protocol.CALL_ID])
        error_json = protocol.encode(self._over_cap_message())
        request = protocol.resume_request(
            call_id, False, "null", error_json, "null", protocol.encode(ErrorCode.RESOURCE_LIMIT.value)
        )
        began = time.perf_counter_ns()
        answer = self._run(sandbox, request, max(timeout_ms - used_ms, 1.0), timeout_ms, resume=True)
        used = used_ms + (time.perf_counter_ns() - began) / 1e6
        after = read_answer(answer, ctx, self._max_calls)
        after.logs = (read.logs or []) + (after.logs or [])
        if after.kind != ANSWER_ERROR:
            after.mutations = (read.mutations or []) + (after.mutations or [])
            after.events = (read.events or []) + (after.events or [])
            after.views = (read.views or []) + (after.views or [])
            if len(after.mutations) > MAX_STATE_MUTATIONS or len(after.events) > MAX_EVENTS:
                after.kind = ANSWER_ERROR
                after.error = error_dict(
                    ErrorCode.RESOURCE_LIMIT, f"more than {MAX_STATE_MUTATIONS} state mutations or {MAX_EVENTS} events"
                )
        return after, used

    def _failed(self, error: ErrorInfo, started: int) -> ExecutionResult:
        duration_us = (time.perf_counter_ns() - started) // 1000
        result = ExecutionResult(status=ERROR, error=error)
        result.metrics["duration_us"] = duration_us
        self._counters.record(result, duration_us, None)
        return result

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


def _drop_suspension(record: Suspension) -> None:
    record.lodging.drop()
