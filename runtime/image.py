"""The pristine image: a guest instance's memory once the glue is loaded and hardened.

Building an instance from scratch (instantiate, start QuickJS, evaluate and harden the
glue) is done once, for a template; the result is kept as a pristine image, in memory and
in the cache directory. Every new instance is the module instantiated again plus the pages
of the image that differ from a freshly instantiated memory. Handles into the guest heap
(the glue's entry points, I/O buffers) are plain addresses, identical in every copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from ._wasmcall import GuestCalls, GuestTrap, export_funcs
from .engine import CACHE_PREFIX, GuestModule, trusted_file, write_private_file

logger = logging.getLogger(__name__)

GLUE_PATH = Path(__file__).parent / "guest" / "glue.js"
IO_BUFFER_BYTES = 64 * 1024
CHUNK = 4096
STATUS_OK = 0

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


def instantiate(guest: GuestModule, memory_limit: int | None) -> tuple[wasmtime.Store, Any]:
    store = wasmtime.Store(guest.engine)
    store.set_wasi(wasmtime.WasiConfig())
    if memory_limit is not None:
        store.set_limits(memory_size=memory_limit)
    store.set_epoch_deadline(1)
    instance = guest.linker.instantiate(store, guest.module)
    return store, instance.exports(store)


def bind(
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
    store, exports = instantiate(guest, None)
    store.set_epoch_deadline(1 << 40)
    calls, _memory, stack_pointer = bind(store, exports)
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
        raise RuntimeError(f"the sandbox glue failed to load: {exception_message(calls)}")
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


def take_result(calls: GuestCalls) -> bytes:
    length = calls.call0("qjs_last_len")
    ptr = calls.call0("qjs_last_ptr") & 0xFFFFFFFF
    return calls.read(ptr, length) if length else b""


def exception_message(calls: GuestCalls) -> str:
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
            return take_result(calls).decode("utf-8", "replace")
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
