"""The process-wide wasmtime engine, the QuickJS guest module and its on-disk cache.

One :class:`wasmtime.Engine` serves every runtime of the process. The guest is the
QuickJS-NG build shipped inside the ``quickjs-rs`` package (``quickjs_rs/_guest.wasm``);
only its wasm file is used, driven by this package's own thin layer. Compiling it takes a
few hundred milliseconds, so the compiled code is serialized into ``cache_dir`` and
deserialized (memory-mapped) by the next process.

Time limits use epoch interruption: a ticker thread advances the engine epoch every
``TICK_MS`` while executions run, and each store gets a deadline in ticks.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

logger = logging.getLogger(__name__)

TICK_MS = 5
MAX_CATCH_UP_TICKS = 4
# Native stack the guest may use. Deep JavaScript recursion traps when it runs out, which
# the runtime reports as RESOURCE_LIMIT. It must stay well below the thread stack of the
# calling threads (8 MiB by default on Linux).
MAX_WASM_STACK = 1024 * 1024
MEMORY_RESERVATION = 1 << 32
GUEST_FILE = "_guest.wasm"
CACHE_PREFIX = "nexus-qjs-"
CACHE_SUFFIX = ".cwasm"
STEPPER_PATH = Path(__file__).parent / "guest" / "step.wat"


class EpochTicker:
    """Advances the engine epoch every TICK_MS while at least one execution is running.

    enter()/exit() run twice per execution, so they avoid locks: a deque's append and
    pop are atomic, and the event is only touched when the ticker has gone to sleep.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active: collections.deque[None] = collections.deque()
        self._running = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        self._active.append(None)
        if not self._running.is_set():
            self._running.set()
            if self._thread is None:
                self._start()

    def exit(self) -> None:
        self._active.pop()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nexus-epoch", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        interval = TICK_MS / 1000
        while True:
            self._running.wait()
            # The epoch follows the clock rather than the number of wake-ups: on a loaded
            # machine a late wake-up also counts the ticks that fell due meanwhile (a few at
            # most, so an execution that has just started loses little of its budget).
            last = time.monotonic()
            while True:
                time.sleep(interval)
                due = min(max(int((time.monotonic() - last) / interval), 1), MAX_CATCH_UP_TICKS)
                for _ in range(due):
                    self._engine.increment_epoch()
                last = max(last + due * interval, time.monotonic() - interval)
                if not self._active:
                    break
            self._running.clear()
            if self._active:  # an execution started while the event was being cleared
                self._running.set()


@dataclass(frozen=True)
class GuestModule:
    """The compiled guest, ready to instantiate."""

    engine: wasmtime.Engine
    module: wasmtime.Module
    linker: wasmtime.Linker
    ticker: EpochTicker
    # A tiny module instantiated beside each guest: one host call per glue request.
    stepper: wasmtime.Module
    source: str  # "disk": deserialized from cache_dir; "compiled": compiled in this process
    cache_path: str | None
    wasm_sha256: str


_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_guest: GuestModule | None = None


def shared_engine() -> wasmtime.Engine:
    global _engine
    with _lock:
        if _engine is None:
            config = wasmtime.Config()
            config.epoch_interruption = True
            config.max_wasm_stack = MAX_WASM_STACK
            # Linear memory is reserved in full up front and never moves, so the host
            # may keep its address for the life of an instance.
            config.memory_reservation = MEMORY_RESERVATION
            config.memory_may_move = False
            _engine = wasmtime.Engine(config)
        return _engine


def guest_module(cache_dir: str, max_cache_size_mb: int) -> GuestModule:
    """Load the guest once per process; later calls return the same module."""
    global _guest
    engine = shared_engine()
    with _lock:
        if _guest is None:
            _guest = _load(engine, Path(cache_dir), max_cache_size_mb)
        return _guest


def guest_wasm_path() -> Path:
    spec = importlib.util.find_spec("quickjs_rs")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the quickjs-rs package (which ships the QuickJS guest) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / GUEST_FILE
    if not path.is_file():
        raise RuntimeError(f"QuickJS guest not found at {path}")
    return path


def _engine_fingerprint() -> str:
    """Changes whenever a serialized module might stop matching this engine."""
    from wasmtime import _ffi

    library = Path(_ffi.filename)
    info = library.stat()
    return (
        f"{library.name}:{info.st_size}:{info.st_mtime_ns}:epoch=1:stack={MAX_WASM_STACK}"
        f":reserve={MEMORY_RESERVATION}:fixed=1"
    )


def _load(engine: wasmtime.Engine, cache_dir: Path, max_cache_size_mb: int) -> GuestModule:
    wasm = guest_wasm_path().read_bytes()
    wasm_sha = hashlib.sha256(wasm).hexdigest()
    key = hashlib.sha256(f"{wasm_sha}|{_engine_fingerprint()}".encode()).hexdigest()[:24]
    cache_path = cache_dir / f"{CACHE_PREFIX}{key}{CACHE_SUFFIX}"
    usable_dir = prepare_cache_dir(cache_dir)
    module: wasmtime.Module | None = None
    source = "compiled"
    if usable_dir and trusted_file(cache_path):
        try:
            module = wasmtime.Module.deserialize_file(engine, str(cache_path))
            source = "disk"
        except wasmtime.WasmtimeError as exc:
            logger.warning("discarding unusable module cache %s: %s", cache_path, exc)
    if module is None:
        module = wasmtime.Module(engine, wasm)
        if usable_dir:
            _write_cache(cache_path, module)
            _prune_cache(cache_dir, keep=cache_path, max_bytes=max_cache_size_mb * 1024 * 1024)
    logger.info("QuickJS guest module ready (%s)", source)
    return GuestModule(
        engine=engine,
        module=module,
        linker=_build_linker(engine),
        ticker=EpochTicker(engine),
        stepper=wasmtime.Module(engine, STEPPER_PATH.read_text()),
        source=source,
        cache_path=str(cache_path) if usable_dir else None,
        wasm_sha256=wasm_sha,
    )


def _build_linker(engine: wasmtime.Engine) -> wasmtime.Linker:
    """WASI (no files, no environment, no stdio) plus the guest's host imports.

    The glue never calls back into the host, and module loading is refused. Time limits
    use epochs, so the guest's interrupt poll always answers "keep going".
    """
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    i32 = wasmtime.ValType.i32()
    linker.define_func("env", "host_interrupt", wasmtime.FuncType([], [i32]), _never_interrupt)
    linker.define_func("env", "host_call", wasmtime.FuncType([i32] * 5, [i32]), _refuse_host_call)
    linker.define_func("env", "host_module_normalize", wasmtime.FuncType([i32] * 5, [i32]), _refuse_module)
    linker.define_func("env", "host_module_load", wasmtime.FuncType([i32] * 3, [i32]), _refuse_module)
    return linker


def _never_interrupt() -> int:
    return 0


def _refuse_host_call(*_args: int) -> int:
    return -1


def _refuse_module(*_args: int) -> int:
    return 0


def prepare_cache_dir(cache_dir: Path) -> bool:
    """Create the cache directory (0700) and check it is ours and private.

    A serialized module is native code: one that another user could write must never be
    loaded, so an untrusted directory disables the cache.
    """
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = cache_dir.stat()
    except OSError as exc:
        logger.warning("module cache disabled, cannot use %s: %s", cache_dir, exc)
        return False
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        logger.warning("module cache disabled: %s is not a private directory of this user", cache_dir)
        return False
    return True


def trusted_file(path: Path) -> bool:
    """A regular file of this user that nobody else can write."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _write_cache(path: Path, module: wasmtime.Module) -> None:
    write_private_file(path, bytes(module.serialize()))


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically (temporary file, then rename) with mode 0600; failures only log."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("could not write the cache file %s: %s", path, exc)


def _prune_cache(cache_dir: Path, keep: Path, max_bytes: int) -> None:
    """Delete older cached modules of this runtime until the directory fits in max_bytes."""
    try:
        entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in cache_dir.glob(f"{CACHE_PREFIX}*") if p != keep]
        total = sum(size for _, size, _ in entries) + (keep.stat().st_size if keep.exists() else 0)
    except OSError:
        return
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        try:
            path.unlink()
            total -= size
        except OSError:
            pass
