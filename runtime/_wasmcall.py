"""A thin call path into guest exports, bypassing wasmtime-py's per-call type handling.

``wasmtime.Func.__call__`` re-reads the function type and converts every argument on each
call (tens of microseconds). The guest exports used on the hot path take and return only
i32 values, so this module calls ``wasmtime_func_call_unchecked`` from the C API directly
with a pre-allocated argument array: about half a microsecond per call. The GIL is released
during the call, as with any ctypes foreign function.

If the C symbols or the wasmtime-py internals it relies on are missing (another wasmtime
version), :func:`make_caller` falls back to the public call, which is slower but correct.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping
from typing import Any

import wasmtime

logger = logging.getLogger(__name__)

_VAL_RAW_SIZE = 16  # bytes of one wasmtime_val_raw_t slot (it can hold a v128)
_MAX_SLOTS = 8

try:
    from wasmtime import _bindings as _b
    from wasmtime import _ffi as _ffi

    _CALL = ctypes.CFUNCTYPE(
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
    )(("wasmtime_func_call_unchecked", _ffi.dll))
    _MEMORY_DATA = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data", _ffi.dll)
    )
    _MEMORY_SIZE = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data_size", _ffi.dll)
    )
    _EPOCH_DEADLINE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)(
        ("wasmtime_context_set_epoch_deadline", _ffi.dll)
    )
    _TRAP_POINTER = ctypes.POINTER(_b.wasm_trap_t)
    _ERROR_POINTER = ctypes.POINTER(_b.wasmtime_error_t)
    FAST_PATH_AVAILABLE = True
except (ImportError, AttributeError, OSError) as exc:  # pragma: no cover - depends on the wasmtime build
    logger.warning("wasmtime fast call path unavailable (%s); using the public API", exc)
    FAST_PATH_AVAILABLE = False


class GuestTrap(Exception):
    """The guest trapped; ``kind`` is one of interrupt, stack, memory, unreachable, other."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify_trap(trap: wasmtime.Trap) -> GuestTrap:
    code = trap.trap_code
    message = trap.message
    if code == wasmtime.TrapCode.INTERRUPT:
        return GuestTrap("interrupt", message)
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return GuestTrap("stack", message)
    if code == wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS:
        return GuestTrap("memory", message)
    if code == wasmtime.TrapCode.UNREACHABLE:
        return GuestTrap("unreachable", message)
    return GuestTrap("other", message)


class GuestCalls:
    """Calls into one store's exports; every export used must take and return i32 only.

    Not thread-safe: one instance belongs to one sandbox, used by one thread at a time.
    """

    def __init__(self, store: wasmtime.Store, funcs: Mapping[str, wasmtime.Func], memory: wasmtime.Memory) -> None:
        self._store = store
        self._funcs = dict(funcs)
        self._memory = memory
        self.fast = FAST_PATH_AVAILABLE
        if self.fast:
            self._setup_fast()

    def _setup_fast(self) -> None:
        try:
            self._context = ctypes.cast(self._store._context(), ctypes.c_void_p).value
            self._slots = (ctypes.c_uint8 * (_VAL_RAW_SIZE * _MAX_SLOTS))()
            self._slots_addr = ctypes.addressof(self._slots)
            # i32 view: argument/result n lives at index 4 * n.
            self._i32 = (ctypes.c_int32 * (4 * _MAX_SLOTS)).from_address(self._slots_addr)
            self._trap = _TRAP_POINTER()
            self._trap_addr = ctypes.addressof(self._trap)
            self._func_addr = {name: ctypes.addressof(func._func) for name, func in self._funcs.items()}
            self._memory_addr = ctypes.addressof(self._memory._memory)
        except AttributeError as exc:  # pragma: no cover - other wasmtime-py internals
            logger.warning("wasmtime fast call path unavailable (%s); using the public API", exc)
            self.fast = False

    # -- calls -----------------------------------------------------------------

    def call(self, name: str, *args: int) -> int:
        """Call export ``name`` with i32 arguments; returns its i32 result (0 when it has none)."""
        if not self.fast:
            return self._slow_call(name, args)
        slots = self._i32
        for index, value in enumerate(args):
            slots[4 * index] = value
        error = _CALL(self._context, self._func_addr[name], self._slots_addr, max(len(args), 1), self._trap_addr)
        if error or self._trap:
            self._raise(error)
        return int(slots[0])

    def call0(self, name: str) -> int:
        if not self.fast:
            return self._slow_call(name, ())
        error = _CALL(self._context, self._func_addr[name], self._slots_addr, 1, self._trap_addr)
        if error or self._trap:
            self._raise(error)
        return int(self._i32[0])

    def call1(self, name: str, a: int) -> int:
        if not self.fast:
            return self._slow_call(name, (a,))
        slots = self._i32
        slots[0] = a
        error = _CALL(self._context, self._func_addr[name], self._slots_addr, 1, self._trap_addr)
        if error or self._trap:
            self._raise(error)
        return int(slots[0])

    def call2(self, name: str, a: int, b: int) -> int:
        if not self.fast:
            return self._slow_call(name, (a, b))
        slots = self._i32
        slots[0] = a
        slots[4] = b
        error = _CALL(self._context, self._func_addr[name], self._slots_addr, 2, self._trap_addr)
        if error or self._trap:
            self._raise(error)
        return int(slots[0])

    def call7(self, name: str, a: int, b: int, c: int, d: int, e: int, f: int, g: int) -> int:
        if not self.fast:
            return self._slow_call(name, (a, b, c, d, e, f, g))
        slots = self._i32
        slots[0] = a
        slots[4] = b
        slots[8] = c
        slots[12] = d
        slots[16] = e
        slots[20] = f
        slots[24] = g
        error = _CALL(self._context, self._func_addr[name], self._slots_addr, 7, self._trap_addr)
        if error or self._trap:
            self._raise(error)
        return int(slots[0])

    def _slow_call(self, name: str, args: tuple[int, ...]) -> int:
        try:
            result = self._funcs[name](self._store, *args)
        except wasmtime.Trap as trap:
            raise classify_trap(trap) from None
        return int(result) if isinstance(result, int) else 0

    def _raise(self, error: int | None) -> None:
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(ctypes.c_void_p(error), _ERROR_POINTER))
        # Take the trap out of the reusable slot before wrapping it (the wrapper owns it).
        owned = ctypes.cast(ctypes.c_void_p(ctypes.cast(self._trap, ctypes.c_void_p).value), _TRAP_POINTER)
        ctypes.c_void_p.from_address(self._trap_addr).value = None
        raise classify_trap(wasmtime.Trap._from_ptr(owned))

    # -- memory ----------------------------------------------------------------

    def memory_base(self) -> int:
        """Host address of linear memory byte 0.

        The engine reserves each memory in full and never moves it (see engine.py), so
        this address holds for the life of the store.
        """
        if self.fast:
            return int(_MEMORY_DATA(self._context, self._memory_addr) or 0)
        return ctypes.cast(self._memory.data_ptr(self._store), ctypes.c_void_p).value or 0

    def memory_size(self) -> int:
        if self.fast:
            return int(_MEMORY_SIZE(self._context, self._memory_addr))
        return int(self._memory.data_len(self._store))

    def read(self, ptr: int, length: int) -> bytes:
        if ptr < 0 or length < 0 or ptr + length > self.memory_size():
            raise GuestTrap("memory", f"guest pointer out of range: {ptr}+{length}")
        return ctypes.string_at(self.memory_base() + ptr, length)

    def write(self, ptr: int, data: bytes) -> None:
        if ptr < 0 or ptr + len(data) > self.memory_size():
            raise GuestTrap("memory", f"guest pointer out of range: {ptr}+{len(data)}")
        ctypes.memmove(self.memory_base() + ptr, data, len(data))

    def read_i32(self, ptr: int) -> int:
        if ptr < 0 or ptr + 4 > self.memory_size():
            raise GuestTrap("memory", f"guest pointer out of range: {ptr}")
        return int(ctypes.c_int32.from_address(self.memory_base() + ptr).value)

    def set_epoch_deadline(self, ticks: int) -> None:
        if self.fast:
            _EPOCH_DEADLINE(self._context, ticks)
        else:
            self._store.set_epoch_deadline(ticks)


def export_funcs(exports: Any, names: list[str]) -> dict[str, wasmtime.Func]:
    funcs: dict[str, wasmtime.Func] = {}
    for name in names:
        item = exports[name]
        if not isinstance(item, wasmtime.Func):
            raise TypeError(f"guest export {name!r} is not a function")
        funcs[name] = item
    return funcs
