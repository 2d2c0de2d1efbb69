"""One guest instance: a wasmtime store running QuickJS with the glue loaded.

Building an instance from scratch (instantiate, start QuickJS, evaluate and harden the
glue) is done once, for a template; the result is kept as a pristine image, in memory and
in the cache directory. Every new instance is the module instantiated again plus the pages
of the image that differ from a freshly instantiated memory. Handles into the guest heap
(the glue's entry points, I/O buffers) are plain addresses, identical in every copy.

A call into the glue crosses the boundary once: the request is written into a buffer of
guest memory and the stepper (guest/step.wat, a small module linked to the guest's exports)
turns it into a JS string, calls the glue's entry point, runs the job queue and leaves the
answer (one JSON string) in the guest's result buffer, where the host reads it.

Protocol (positional JSON arrays, see guest/glue.js):

    run     [handlerSlot, grantSlot, state, args, {c?, k?, cp?, xm?, lm?, sc?, rs?}?]
    resume  [callId, ok, value, errorMessage, state|null]
    answers [0, returnValue, mutations, events, viewCommands, logs, apiCalls]   finished
            [1, error, logs, apiCalls]                                            failed
            [2, [callId, alias, method, args], mutations, events, views, logs, apiCalls]
            [3]                                               waiting: drain, then poll
    mutations [key, value] or [key] (delete); events [name, payload];
    view commands [type, componentId, args]; logs [level, message].
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import json.scanner
import logging
import secrets
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from ._wasmcall import GuestCalls, GuestTrap, export_funcs
from .engine import CACHE_PREFIX, GuestModule, trusted_file, write_private_file
from .errors import INTERNAL_ERROR, MEMORY_LIMIT, RESOURCE_LIMIT, TIMEOUT, GuestFault
from .limits import GUEST_ALLOCATOR_HEADROOM_BYTES, MAX_COMPILED_PER_INSTANCE

logger = logging.getLogger(__name__)

GLUE_PATH = Path(__file__).parent / "guest" / "glue.js"
IO_BUFFER_BYTES = 64 * 1024
CHUNK = 4096
STATUS_OK = 0
STATUS_JS_ERROR = 1
# First element of every glue answer.
ANSWER_OK = 0
ANSWER_ERROR = 1
ANSWER_SUSPENDED = 2
ANSWER_KINDS = frozenset({ANSWER_OK, ANSWER_ERROR, ANSWER_SUSPENDED})
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

_EXPORTS = [
    "qjs_alloc",
    "qjs_free",
    "qjs_last_ptr",
    "qjs_last_len",
    "qjs_result_free",
    "new_string",
    "call_function",
    "free_value",
    "get_string",
    "get_prop",
    "execute_pending_jobs",
    "eval_code",
    "last_exception",
    "set_memory_limit",
    "new_undefined",
]


@dataclass(frozen=True)
class PristineImage:
    """Linear memory of an instance whose glue is loaded and hardened, before any handler ran."""

    memory_size: int
    chunks: tuple[tuple[int, bytes], ...]
    stack_pointer: int
    run: int
    poll: int
    resume: int
    undefined: int
    io_ptr: int
    argv_ptr: int
    out_ptr: int
    # Addresses of the pointer and length words of the guest's result buffer, when found.
    result_words: tuple[int, int] | None

    @property
    def image_bytes(self) -> int:
        return sum(len(data) for _, data in self.chunks)


# The json module's scanner, called directly: json.loads adds a few checks per call.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]

_image_lock = threading.Lock()
_images: dict[str, PristineImage] = {}
_IMAGE_MAGIC = b"NXQJSIMG\x01"
_IMAGE_FIELDS = (
    "memory_size",
    "stack_pointer",
    "run",
    "poll",
    "resume",
    "undefined",
    "io_ptr",
    "argv_ptr",
    "out_ptr",
    "result_words",
)


def pristine_image(guest: GuestModule) -> PristineImage:
    """The image for this guest and glue: from memory, from the cache directory, or built."""
    glue = GLUE_PATH.read_bytes()
    key = hashlib.sha256(guest.wasm_sha256.encode() + b"|" + glue).hexdigest()[:24]
    with _image_lock:
        image = _images.get(key)
        if image is None:
            path = _image_path(guest, key)
            image = _load_image(path) if path is not None else None
            if image is None:
                image = _build_image(guest, glue.decode("utf-8"))
                if path is not None:
                    _save_image(path, image)
            _images[key] = image
        return image


def _image_path(guest: GuestModule, key: str) -> Path | None:
    if guest.cache_path is None:
        return None
    return Path(guest.cache_path).parent / f"{CACHE_PREFIX}image-{key}.bin"


def _save_image(path: Path, image: PristineImage) -> None:
    header = {name: getattr(image, name) for name in _IMAGE_FIELDS}
    header["chunks"] = [[offset, len(data)] for offset, data in image.chunks]
    head = json.dumps(header).encode()
    body = _IMAGE_MAGIC + struct.pack("<I", len(head)) + head + b"".join(data for _, data in image.chunks)
    write_private_file(path, body + hashlib.sha256(body).digest())


def _load_image(path: Path) -> PristineImage | None:
    """A cached image, or None when there is none or it is not intact."""
    if not trusted_file(path):
        return None
    try:
        blob = path.read_bytes()
        body, digest = blob[:-32], blob[-32:]
        if not body.startswith(_IMAGE_MAGIC) or hashlib.sha256(body).digest() != digest:
            raise ValueError("damaged")
        at = len(_IMAGE_MAGIC)
        (size,) = struct.unpack_from("<I", body, at)
        header = json.loads(body[at + 4 : at + 4 + size])
        at += 4 + size
        chunks = []
        for offset, length in header.pop("chunks"):
            chunks.append((int(offset), body[at : at + length]))
            at += length
        if at != len(body):
            raise ValueError("damaged")
        words = header.pop("result_words")
        return PristineImage(
            chunks=tuple(chunks),
            result_words=tuple(words) if words else None,
            **header,  # type: ignore[arg-type]
        )
    except (OSError, ValueError, TypeError, KeyError, struct.error) as exc:
        logger.warning("ignoring unusable guest image cache %s: %s", path, exc)
        return None


def _instantiate(guest: GuestModule, memory_limit: int | None) -> tuple[wasmtime.Store, Any]:
    store = wasmtime.Store(guest.engine)
    store.set_wasi(wasmtime.WasiConfig())
    if memory_limit is not None:
        store.set_limits(memory_size=memory_limit)
    store.set_epoch_deadline(1)
    instance = guest.linker.instantiate(store, guest.module)
    return store, instance.exports(store)


def _bind(
    store: wasmtime.Store, exports: Any, stepper: wasmtime.Module | None = None
) -> tuple[GuestCalls, wasmtime.Memory, wasmtime.Global]:
    memory = exports["memory"]
    stack_pointer = exports["__stack_pointer"]
    if not isinstance(memory, wasmtime.Memory) or not isinstance(stack_pointer, wasmtime.Global):
        raise RuntimeError("the QuickJS guest does not export its memory and stack pointer")
    funcs = export_funcs(exports, _EXPORTS)
    if stepper is not None:
        imports = [memory if item.name == "memory" else funcs[str(item.name)] for item in stepper.imports]
        funcs.update(export_funcs(wasmtime.Instance(store, stepper, imports).exports(store), ["step"]))
    return GuestCalls(store, funcs, memory), memory, stack_pointer


def _build_image(guest: GuestModule, glue: str) -> PristineImage:
    store, exports = _instantiate(guest, None)
    store.set_epoch_deadline(1 << 40)
    calls, _memory, stack_pointer = _bind(store, exports)
    fresh = calls.read(0, calls.memory_size())
    api = _eval_script(calls, glue)
    entry = {name: _get_prop(calls, api, name) for name in ("run", "poll", "resume")}
    undefined = calls.call0("new_undefined")
    io_ptr = calls.call1("qjs_alloc", IO_BUFFER_BYTES)
    argv_ptr = calls.call1("qjs_alloc", 16)
    out_ptr = calls.call1("qjs_alloc", 8)
    if not all((undefined, io_ptr, argv_ptr, out_ptr, *entry.values())):
        raise RuntimeError("the QuickJS guest could not allocate the glue's buffers")
    result_words = _find_result_words(calls)
    calls.call0("qjs_result_free")
    size = calls.memory_size()
    image = calls.read(0, size)
    baseline = fresh + bytes(size - len(fresh))
    chunks = tuple(
        (offset, image[offset : offset + CHUNK])
        for offset in range(0, size, CHUNK)
        if image[offset : offset + CHUNK] != baseline[offset : offset + CHUNK]
    )
    sp_value = stack_pointer.value(store)
    store.close()
    built = PristineImage(
        memory_size=size,
        chunks=chunks,
        stack_pointer=int(sp_value) if isinstance(sp_value, int) else 0,
        undefined=undefined,
        io_ptr=io_ptr,
        argv_ptr=argv_ptr,
        out_ptr=out_ptr,
        result_words=result_words,
        **entry,
    )
    logger.debug("pristine guest image: %d bytes in %d chunks", built.image_bytes, len(chunks))
    return built


def _write_string(calls: GuestCalls, text: bytes) -> int:
    ptr = calls.call1("qjs_alloc", len(text))
    if not ptr:
        raise RuntimeError("guest allocation failed")
    calls.write(ptr, text)
    handle = calls.call2("new_string", ptr, len(text))
    calls.call2("qjs_free", ptr, len(text))
    return handle


def _eval_script(calls: GuestCalls, source: str) -> int:
    data = source.encode()
    ptr = calls.call1("qjs_alloc", len(data))
    out = calls.call1("qjs_alloc", 4)
    calls.write(ptr, data)
    status = calls.call("eval_code", ptr, len(data), out)
    handle = calls.read_i32(out)
    calls.call2("qjs_free", ptr, len(data))
    calls.call2("qjs_free", out, 4)
    if status != STATUS_OK:
        raise RuntimeError(f"the sandbox glue failed to load: {_exception_message(calls)}")
    return handle


def _get_prop(calls: GuestCalls, obj: int, name: str) -> int:
    key = name.encode()
    ptr = calls.call1("qjs_alloc", len(key))
    out = calls.call1("qjs_alloc", 4)
    calls.write(ptr, key)
    status = calls.call("get_prop", obj, ptr, len(key), out)
    handle = calls.read_i32(out)
    calls.call2("qjs_free", ptr, len(key))
    calls.call2("qjs_free", out, 4)
    if status != STATUS_OK or not handle:
        raise RuntimeError(f"the sandbox glue has no {name!r} entry point")
    return handle


def _take_result(calls: GuestCalls) -> bytes:
    length = calls.call0("qjs_last_len")
    ptr = calls.call0("qjs_last_ptr") & 0xFFFFFFFF
    return calls.read(ptr, length) if length else b""


def _exception_message(calls: GuestCalls) -> str:
    """Take the pending guest exception (clearing it) and return its message, best effort."""
    try:
        out = calls.call1("qjs_alloc", 4)
        status = calls.call1("last_exception", out)
        handle = calls.read_i32(out)
        calls.call2("qjs_free", out, 4)
        if status != STATUS_OK or not handle:
            return ""
        try:
            message = _get_prop(calls, handle, "message")
        except RuntimeError:
            return ""
        finally:
            calls.call1("free_value", handle)
        try:
            if calls.call1("get_string", message) != STATUS_OK:
                return ""
            return _take_result(calls).decode("utf-8", "replace")
        finally:
            calls.call1("free_value", message)
    except (GuestTrap, wasmtime.WasmtimeError):
        return ""


def _find_result_words(calls: GuestCalls) -> tuple[int, int] | None:
    """Locate the guest's result buffer (pointer and length words) in its static data.

    Reading those two words directly saves two calls per answer. The location is only
    trusted after it matched three different strings; otherwise the exports are used.
    """
    found: tuple[int, int] | None = None
    for attempt, text in enumerate((b"nexus-probe", b"nexus-probe-0123456789", b"nexus-probe-0123456789-abcdefghij")):
        handle = _write_string(calls, text)
        if calls.call1("get_string", handle) != STATUS_OK:
            return None
        calls.call1("free_value", handle)
        ptr = calls.call0("qjs_last_ptr") & 0xFFFFFFFF
        length = calls.call0("qjs_last_len")
        if length != len(text):
            return None
        if attempt == 0:
            continue
        if found is None:
            memory = calls.read(0, calls.memory_size())
            found = _locate_pair(memory, ptr, length)
            if found is None:
                return None
        elif (calls.read_i32(found[0]) & 0xFFFFFFFF, calls.read_i32(found[1])) != (ptr, length):
            return None
    return found


def _locate_pair(memory: bytes, ptr: int, length: int) -> tuple[int, int] | None:
    needle = struct.pack("<I", ptr)
    start = memory.find(needle)
    while start >= 0:
        if start % 4 == 0:
            for delta in (-8, -4, 4, 8):
                at = start + delta
                if 0 <= at <= len(memory) - 4 and struct.unpack_from("<I", memory, at)[0] == length:
                    return start, at
        start = memory.find(needle, start + 1)
    return None


def escaped_size(text: str) -> int:
    """Length of JSON ``text`` once every non-ASCII character is a ``\\uXXXX`` escape.

    That is how clients receive it; an astral character takes two escapes.
    """
    units = len(text.encode("utf-16-le")) // 2
    return units + 5 * (units - len(text.encode("ascii", "ignore")))


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

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    def __len__(self) -> int:
        return len(self._slots)


class Sandbox:
    """A guest instance restored from the pristine image, with host-side bookkeeping."""

    def __init__(self, guest: GuestModule, memory_limit: int) -> None:
        image = pristine_image(guest)
        if image.memory_size > memory_limit:
            raise ValueError("memory_limit_mb is too small for the sandbox to start")
        self.image = image
        self.memory_limit = memory_limit
        self._ticker = guest.ticker
        self._store, exports = _instantiate(guest, memory_limit)
        self.calls, memory, stack_pointer = _bind(self._store, exports, guest.stepper)
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
        self.calls.set_epoch_deadline(deadline_ticks)
        self._ticker.enter()
        try:
            return self._decode(self._step(entry, payload))
        except GuestTrap as trap:
            self.dirty = True
            raise self._fault_from_trap(trap) from None
        except wasmtime.WasmtimeError as exc:
            self.dirty = True
            raise GuestFault(INTERNAL_ERROR, f"the sandbox failed: {exc}") from None
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
            raise GuestFault(INTERNAL_ERROR, "the sandbox glue answered something unexpected")
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
        self.answer_size = len(text) if text.isascii() else escaped_size(text)
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
            return GuestFault(MEMORY_LIMIT, "the request does not fit in the sandbox memory")
        if status == STEP_NOT_A_STRING:
            return GuestFault(INTERNAL_ERROR, "the sandbox glue did not answer with a string")
        return GuestFault(INTERNAL_ERROR, f"the sandbox stepper answered {status}")

    def _read_result(self) -> str:
        """The answer's text, decoded straight out of guest memory."""
        slots = self._result_slots
        if slots is None:
            return _take_result(self.calls).decode("utf-8", "replace")
        start = slots[0].value
        end = start + slots[1].value
        memory = self._memory
        if end > len(memory):
            # Linear memory only grows: the view is renewed when an answer lies past its end.
            memory = self._memory = self._memory_view()
            if end > len(memory):
                raise GuestFault(INTERNAL_ERROR, "the sandbox answer lies outside its memory")
        try:
            return str(memory[start:end], "utf-8")
        except UnicodeDecodeError:
            raise GuestFault(INTERNAL_ERROR, "the sandbox glue answered something unexpected") from None

    def _memory_view(self) -> memoryview:
        """Linear memory as it is now; valid until the store closes (memory never moves)."""
        size = self.calls.memory_size()
        return memoryview((ctypes.c_ubyte * size).from_address(self._base)).cast("B")

    def _glue_failure(self) -> GuestFault:
        message = _exception_message(self.calls)
        if message == "out of memory" or self.near_memory_limit():
            return GuestFault(MEMORY_LIMIT, f"the handler exceeded the memory limit of {self.memory_limit} bytes")
        if message == "stack overflow":
            return GuestFault(RESOURCE_LIMIT, "stack overflow: the handler nested calls too deeply")
        if message == "interrupted":
            return GuestFault(TIMEOUT, "the handler ran out of time")
        return GuestFault(INTERNAL_ERROR, f"the sandbox glue failed: {message or 'unknown error'}")

    def _fault_from_trap(self, trap: GuestTrap) -> GuestFault:
        if trap.kind == "interrupt":
            return GuestFault(TIMEOUT, "the handler ran out of time")
        if trap.kind in ("stack", "memory"):
            # The guest's native stack or its shadow stack in linear memory ran out.
            return GuestFault(RESOURCE_LIMIT, "stack overflow: the handler nested calls too deeply")
        if self.near_memory_limit():
            return GuestFault(MEMORY_LIMIT, f"the handler exceeded the memory limit of {self.memory_limit} bytes")
        return GuestFault(INTERNAL_ERROR, f"the sandbox trapped: {trap}")

    # -- figures -----------------------------------------------------------------

    def memory_size(self) -> int:
        if self.closed:
            return 0
        # The stepper reports the size at the end of a successful call; anything else asks.
        return self.size_after_call or self.calls.memory_size()

    def near_memory_limit(self) -> bool:
        return self.calls.memory_size() + 2 * 65536 >= self.memory_limit

    def exhausted_memory(self, memory_size: int | None = None) -> bool:
        """True once linear memory came so close to its cap that an allocation must have failed."""
        if self.closed:
            return False
        size = self.calls.memory_size() if memory_size is None else memory_size
        return size + EXHAUSTION_MARGIN >= self.memory_limit

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._store.close()
        except Exception:  # closing must never fail the caller
            logger.debug("closing a guest store failed", exc_info=True)
