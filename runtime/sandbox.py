"""One guest instance: a wasmtime store running QuickJS, restored from the pristine image.

A call into the glue crosses the boundary once: the request is written into a buffer of
guest memory and the stepper (guest/step.wat, a small module linked to the guest's exports)
turns it into a JS string, calls the glue's entry point, runs the job queue and leaves the
answer (one JSON string) in the guest's result buffer, where the host reads it. The
requests and answers are described in protocol.py.
"""

from __future__ import annotations

import ctypes
import functools
import json
import json.scanner
import logging
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime

from ._wasmcall import GuestTrap
from .engine import GuestModule
from .errors import ErrorCode, GuestFault
from .image import IO_BUFFER_BYTES, bind, exception_message, instantiate, pristine_image, take_result
from .limits import GUEST_ALLOCATOR_HEADROOM_BYTES, MAX_COMPILED_PER_INSTANCE
from .protocol import ANSWER_KINDS, escaped_size

logger = logging.getLogger(__name__)

# What the stepper's `step` returns (guest/step.wat).
STEP_OK = 0
STEP_THREW = 1
STEP_NOT_A_STRING = 2
STEP_NO_REQUEST = 3
WASM_PAGE = 65536
# Linear memory this close to the cap means the guest's allocator has been refused.
EXHAUSTION_MARGIN = 1024 * 1024
# Epoch ticks allowed for setting an instance up (the ticker may already be running).
SETUP_TICKS = 2000
# Capability sets (with their extension tables) cached per instance.
MAX_CAPABILITY_SETS = 64

# The json module's scanner, called directly: json.loads adds a few checks per call.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


class SlotTable:
    """Numbered slots of a guest-side table, with least-recently-used reuse.

    The guest keeps compiled handlers and capability sets in arrays indexed by slot; this
    host-side mirror knows which key sits in which slot.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._slots: OrderedDict[Any, int] = OrderedDict()
        self._free: list[int] = []
        self._next = 0

    def lookup(self, key: Any) -> tuple[int, bool]:
        """The slot of ``key`` and whether the guest already holds it there.

        A miss reserves a slot (evicting the least recently used key when full); the caller
        then sends the definition and calls :meth:`abandon` if the guest refused it.
        """
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot, True
        if self._free:
            slot = self._free.pop()
        elif self._next < self._capacity:
            slot = self._next
            self._next += 1
        else:
            _, slot = self._slots.popitem(last=False)
        self._slots[key] = slot
        return slot, False

    def abandon(self, key: Any) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._free.append(slot)

    def to_data(self) -> list[Any]:
        """The table as JSON data: ``[capacity, [[key, slot], ...], free slots, next slot]``."""
        return [self._capacity, [[key, slot] for key, slot in self._slots.items()], list(self._free), self._next]

    @classmethod
    def from_data(cls, data: Any, key_of: Callable[[Any], Any] = lambda key: key) -> SlotTable:
        """The table ``to_data`` described; ValueError for anything else."""
        try:
            capacity, entries, free, next_slot = data
            table = cls(int(capacity))
            for key, slot in entries:
                table._slots[key_of(key)] = int(slot)
            table._free = [int(slot) for slot in free]
            table._next = int(next_slot)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a slot table: {exc}") from None
        return table


class Lodger(Protocol):
    """A hibernated execution whose state is still only in an instance's memory."""

    def evict(self, sandbox: Sandbox, reset: bool) -> None:
        """Take the state out of ``sandbox`` before anything else runs in it or it closes;
        ``reset`` leaves it pristine."""


class Sandbox:
    """A guest instance restored from the pristine image, with host-side bookkeeping."""

    def __init__(self, guest: GuestModule, memory_limit: int) -> None:
        image = pristine_image(guest)
        if image.memory_size > memory_limit:
            raise ValueError("memory_limit_mb is too small for the sandbox to start")
        self.image = image
        self.memory_limit = memory_limit
        self._guest = guest
        self._ticker = guest.ticker
        # Bumped by every call into the guest and every restore: a changed instance.
        self.generation = 0
        # The hibernated execution whose state lives only in this instance's memory.
        self.lodger: Lodger | None = None
        self._setup()

    def _setup(self) -> None:
        guest, image, memory_limit = self._guest, self.image, self.memory_limit
        self._store, exports = instantiate(guest, memory_limit)
        self.calls, memory, stack_pointer = bind(self._store, exports, guest.stepper)
        self.linear_memory, self.stack_pointer = memory, stack_pointer
        # step(entry, ptr, length): the stepper with this instance's fixed arguments bound.
        self._call_step = functools.partial(
            self.calls.call7, "step", image.poll, image.undefined, image.argv_ptr, image.out_ptr
        )
        self.calls.set_epoch_deadline(SETUP_TICKS)
        current = self.calls.memory_size()
        if image.memory_size > current:
            memory.grow(self._store, (image.memory_size - current + 65535) // 65536)
        base = self.calls.memory_base()
        for offset, data in image.chunks:
            ctypes.memmove(base + offset, data, len(data))
        stack_pointer.set_value(self._store, wasmtime.Val.i32(image.stack_pointer))
        self.calls.call1("set_memory_limit", max(memory_limit - GUEST_ALLOCATOR_HEADROOM_BYTES, 1 << 20))
        # Memory never moves (see engine.py): views on the fixed slots are made once.
        self._base = self.calls.memory_base()
        self._memory = self._memory_view()
        self._io = self._memory[image.io_ptr : image.io_ptr + IO_BUFFER_BYTES]
        self._result_slots = (
            None
            if image.result_words is None
            else (
                ctypes.c_uint32.from_address(self._base + image.result_words[0]),
                ctypes.c_uint32.from_address(self._base + image.result_words[1]),
            )
        )
        self.panel_id: str | None = None
        self.handlers = SlotTable(MAX_COMPILED_PER_INSTANCE)
        self.capabilities = SlotTable(MAX_CAPABILITY_SETS)
        self.needs_seed = True
        self.size_after_call: int | None = None
        # Size of the last answer as JSON with every non-ASCII character escaped.
        self.answer_size = 0
        # JSON of the arguments the glue holds from the last execution that reached its handler.
        self.last_args: str | None = None
        self.dirty = False
        self.closed = False
        self.executions = 0

    def take_seed(self) -> list[int] | None:
        if not self.needs_seed:
            return None
        self.needs_seed = False
        return list(struct.unpack("<4i", secrets.token_bytes(16)))

    # -- calls into the glue ---------------------------------------------------

    def start(self, request: bytes, deadline_ticks: int) -> list[Any]:
        """Run a request through the glue until it finishes or suspends."""
        return self._guarded(self.image.run, request, deadline_ticks)

    def resume(self, reply: bytes, deadline_ticks: int) -> list[Any]:
        return self._guarded(self.image.resume, reply, deadline_ticks)

    def _guarded(self, entry: int, payload: bytes, deadline_ticks: int) -> list[Any]:
        # Guest code runs only here, always under a deadline that the ticker enforces.
        if self.lodger is not None:  # the runtime vacates at checkout; this is a safeguard
            self.vacate()
        self.generation += 1
        self.calls.set_epoch_deadline(deadline_ticks)
        self._ticker.enter()
        try:
            return self._decode(self._step(entry, payload))
        except GuestTrap as trap:
            self.dirty = True
            raise self._fault_from_trap(trap) from None
        except wasmtime.WasmtimeError as exc:
            self.dirty = True
            raise GuestFault(ErrorCode.INTERNAL_ERROR, f"the sandbox failed: {exc}") from None
        except GuestFault:
            self.dirty = True
            raise
        finally:
            self._ticker.exit()

    @staticmethod
    def _decode(text: str) -> list[Any]:
        try:
            answer, end = _scan(text, 0)
            if end != len(text):
                answer = None
        except (ValueError, StopIteration):
            answer = None
        if not isinstance(answer, list) or not answer or answer[0] not in ANSWER_KINDS:
            raise GuestFault(ErrorCode.INTERNAL_ERROR, "the sandbox glue answered something unexpected")
        return answer

    def _step(self, entry: int, payload: bytes | None) -> str:
        """Call a glue entry point with one string argument (or none) through the stepper
        (guest/step.wat), which also runs the job queue; return the glue's answer.

        The I/O buffer, argument vector and out slot sit at fixed addresses inside the
        pristine image, which is never smaller than the memory, so they need no bound checks.
        """
        self.size_after_call = None
        if payload is None:
            reply = self._call_step(entry, 0, -1)
        elif len(payload) <= IO_BUFFER_BYTES:
            self._io[: len(payload)] = payload
            reply = self._call_step(entry, self.image.io_ptr, len(payload))
        else:
            reply = self._step_large(entry, payload)
        status = reply & 0xFF
        if status != STEP_OK:
            raise self._step_failure(status)
        self.size_after_call = (reply >> 8) * WASM_PAGE
        text = self._read_result()
        self.answer_size = escaped_size(text)
        return text

    def _step_large(self, entry: int, payload: bytes) -> int:
        calls = self.calls
        size = len(payload)
        ptr = calls.call1("qjs_alloc", size)
        if not ptr:
            return STEP_NO_REQUEST | (calls.memory_size() // WASM_PAGE) << 8
        try:
            calls.write(ptr, payload)
            return int(self._call_step(entry, ptr, size))
        finally:
            calls.call2("qjs_free", ptr, size)

    def _step_failure(self, status: int) -> GuestFault:
        if status == STEP_THREW:
            return self._glue_failure()
        if status == STEP_NO_REQUEST:
            return GuestFault(ErrorCode.MEMORY_LIMIT, "the request does not fit in the sandbox memory")
        if status == STEP_NOT_A_STRING:
            return GuestFault(ErrorCode.INTERNAL_ERROR, "the sandbox glue did not answer with a string")
        return GuestFault(ErrorCode.INTERNAL_ERROR, f"the sandbox stepper answered {status}")

    def _read_result(self) -> str:
        """The answer's text, decoded straight out of guest memory."""
        slots = self._result_slots
        if slots is None:
            return take_result(self.calls).decode("utf-8", "replace")
        start = slots[0].value
        end = start + slots[1].value
        memory = self._memory
        if end > len(memory):
            # Linear memory only grows: the view is renewed when an answer lies past its end.
            memory = self._memory = self._memory_view()
            if end > len(memory):
                raise GuestFault(ErrorCode.INTERNAL_ERROR, "the sandbox answer lies outside its memory")
        try:
            return str(memory[start:end], "utf-8")
        except UnicodeDecodeError:
            raise GuestFault(ErrorCode.INTERNAL_ERROR, "the sandbox glue answered something unexpected") from None

    def _memory_view(self) -> memoryview:
        """Linear memory as it is now; valid until the store closes (memory never moves)."""
        size = self.calls.memory_size()
        return memoryview((ctypes.c_ubyte * size).from_address(self._base)).cast("B")

    def _glue_failure(self) -> GuestFault:
        message = exception_message(self.calls)
        if message == "out of memory" or self.near_memory_limit():
            return self._over_memory()
        if message == "stack overflow":
            return GuestFault(ErrorCode.RESOURCE_LIMIT, "stack overflow: the handler nested calls too deeply")
        if message == "interrupted":
            return GuestFault(ErrorCode.TIMEOUT, "the handler ran out of time")
        return GuestFault(ErrorCode.INTERNAL_ERROR, f"the sandbox glue failed: {message or 'unknown error'}")

    def _fault_from_trap(self, trap: GuestTrap) -> GuestFault:
        if trap.kind == "interrupt":
            return GuestFault(ErrorCode.TIMEOUT, "the handler ran out of time")
        if trap.kind in ("stack", "memory"):
            # The guest's native stack or its shadow stack in linear memory ran out.
            return GuestFault(ErrorCode.RESOURCE_LIMIT, "stack overflow: the handler nested calls too deeply")
        if self.near_memory_limit():
            return self._over_memory()
        return GuestFault(ErrorCode.INTERNAL_ERROR, f"the sandbox trapped: {trap}")

    # -- figures -----------------------------------------------------------------

    def memory_size(self) -> int:
        if self.closed:
            return 0
        # The stepper reports the size at the end of a successful call; anything else asks.
        return self.size_after_call or self.calls.memory_size()

    def _over_memory(self) -> GuestFault:
        return GuestFault(ErrorCode.MEMORY_LIMIT, f"the handler exceeded the memory limit of {self.memory_limit} bytes")

    def near_memory_limit(self) -> bool:
        return self.calls.memory_size() + 2 * 65536 >= self.memory_limit

    def exhausted_memory(self, memory_size: int | None = None) -> bool:
        """True once linear memory came so close to its cap that an allocation must have failed."""
        if self.closed:
            return False
        size = self.calls.memory_size() if memory_size is None else memory_size
        return size + EXHAUSTION_MARGIN >= self.memory_limit

    # -- hibernation (runtime/hibernation.py) -----------------------------------

    def vacate(self, reset: bool = True) -> None:
        """Let a hibernated execution living in this instance take its state out first.

        Call it right after checkout, before the host tables are consulted; ``reset``
        (unless the instance closes or is overwritten anyway) leaves it pristine.
        """
        lodger = self.lodger
        if lodger is not None:
            lodger.evict(self, reset)

    def forget_tables(self) -> None:
        """The host tables of a pristine instance."""
        self.handlers = SlotTable(MAX_COMPILED_PER_INSTANCE)
        self.capabilities = SlotTable(MAX_CAPABILITY_SETS)
        self.needs_seed = True
        self.last_args = None

    def memory_bytes(self) -> bytes:
        """A copy of linear memory as it is now."""
        return bytes(self._memory_view())

    def grow_to(self, size: int) -> None:
        current = self.calls.memory_size()
        if size > current:
            self.linear_memory.grow(self._store, (size - current + WASM_PAGE - 1) // WASM_PAGE)
        self._memory = self._memory_view()

    def write_memory(self, offset: int, data: bytes) -> None:
        self._memory[offset : offset + len(data)] = data

    def read_stack_pointer(self) -> int:
        value = self.stack_pointer.value(self._store)
        return int(value) if isinstance(value, int) else 0

    def restore_registers(self, stack_pointer: int) -> None:
        """The guest's globals and allocator cap after its memory was replaced."""
        self.stack_pointer.set_value(self._store, wasmtime.Val.i32(stack_pointer))
        self.calls.set_epoch_deadline(SETUP_TICKS)
        self.calls.call1("set_memory_limit", max(self.memory_limit - GUEST_ALLOCATOR_HEADROOM_BYTES, 1 << 20))
        self.size_after_call = None
        self.generation += 1

    def rebuild(self) -> None:
        """A pristine instance in place of this one (same object, new store)."""
        self.vacate(reset=False)
        try:
            self._store.close()
        except Exception:  # closing must never fail the caller
            logger.debug("closing a guest store failed", exc_info=True)
        panel_id, executions = self.panel_id, self.executions
        self._setup()
        self.panel_id, self.executions = panel_id, executions
        self.generation += 1

    def close(self) -> None:
        if self.closed:
            return
        self.vacate(reset=False)
        self.closed = True
        try:
            self._store.close()
        except Exception:  # closing must never fail the caller
            logger.debug("closing a guest store failed", exc_info=True)
