"""Hibernation: a suspended execution's guest state taken out of its instance and put back.

At a suspension the guest has returned to the host: its whole state is its linear memory,
the stack pointer (the only mutable global the guest exports, see image.py) and the host's
mirror of what the guest caches (handler and capability slots, last arguments, seed). A
snapshot keeps the 256-byte chunks of memory that differ from the baseline (a fresh
instance of this runtime), compressed with zstandard: about 41 KiB for the monitor
sample's suspension. Measured on it: 4 KiB chunks make 110 KiB (45 KiB when XORed with the
baseline, but the XOR in Python costs a millisecond); zlib is as small and 3-4x slower.

Capture is lazy: a suspended execution leaves its instance to the pool at once but stays
lodged in it (``Sandbox.lodger``) until something else is about to run there or the instance
closes; only then is its snapshot taken. Resumed in the same untouched instance, nothing is
copied at all; resumed elsewhere, the snapshot is restored over the whole memory (baseline
first, so nothing of what the instance ran before remains) and the registers are reset.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zstandard

from .engine import GuestModule
from .errors import CodedError, ErrorCode
from .sandbox import WASM_PAGE, Sandbox, SlotTable

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 256
# Memory is compared in pages, then blocks, then chunks, descending only where it differs.
PAGE = 4096
_BLOCK = 16 * PAGE
_ZSTD_LEVEL = 1
_local = threading.local()


@dataclass(frozen=True, slots=True)
class HostTables:
    """The host's mirror of what the guest holds, as JSON data (see Sandbox)."""

    handlers: list[Any]
    capabilities: list[Any]
    last_args: str | None
    needs_seed: bool

    @classmethod
    def of(cls, sandbox: Sandbox) -> HostTables:
        return cls(sandbox.handlers.to_data(), sandbox.capabilities.to_data(), sandbox.last_args, sandbox.needs_seed)

    def apply(self, sandbox: Sandbox) -> None:
        sandbox.handlers = SlotTable.from_data(self.handlers)
        sandbox.capabilities = SlotTable.from_data(self.capabilities, _grant_key)
        sandbox.last_args = self.last_args
        sandbox.needs_seed = self.needs_seed


def _grant_key(key: Any) -> Any:
    """A grant key back from JSON: ``[[tokens...], extensions_json]`` -> tuples."""
    if isinstance(key, list) and len(key) == 2 and isinstance(key[0], list) and isinstance(key[1], str):
        return (tuple(str(token) for token in key[0]), key[1])
    if isinstance(key, tuple):
        return key
    raise ValueError("malformed grant key")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Linear memory and registers of a suspended guest, relative to the baseline."""

    memory_size: int
    stack_pointer: int
    offsets: tuple[int, ...]
    delta: bytes  # zstandard frame of the changed chunks, in offset order

    @property
    def raw_size(self) -> int:
        return len(self.offsets) * CHUNK


class Baseline:
    """Linear memory of a fresh instance of one runtime, and per-chunk digests of it."""

    def __init__(self, guest: GuestModule, memory_limit: int) -> None:
        fresh = Sandbox(guest, memory_limit)
        try:
            self.memory = fresh.memory_bytes()
        finally:
            fresh.close()
        self.size = len(self.memory)
        self._digests = [
            hashlib.blake2b(self.memory[at : at + PAGE], digest_size=8).digest() for at in range(0, self.size, PAGE)
        ]

    def digest_outside(self, offsets: tuple[int, ...]) -> str:
        """What a snapshot with these chunks takes from the baseline (the pages it leaves
        alone), as one digest."""
        touched = {at // PAGE for at in offsets}
        parts = [digest for index, digest in enumerate(self._digests) if index not in touched]
        return hashlib.sha256(self.size.to_bytes(8, "little") + b"".join(parts)).hexdigest()


def capture(sandbox: Sandbox, baseline: Baseline) -> Snapshot:
    memory = sandbox.memory_bytes()
    offsets = tuple(_changed_chunks(memory, baseline.memory))
    changed = b"".join(memory[at : at + CHUNK] for at in offsets)
    return Snapshot(
        memory_size=len(memory),
        stack_pointer=sandbox.read_stack_pointer(),
        offsets=offsets,
        delta=_compressor().compress(changed),
    )


def restore(sandbox: Sandbox, snapshot: Snapshot, baseline: Baseline) -> None:
    """Make ``sandbox`` the instance the snapshot was taken of; CodedError if it cannot be."""
    if snapshot.memory_size > sandbox.memory_limit:
        raise CodedError(ErrorCode.RESOURCE_LIMIT, "the suspended handler's memory is over this runtime's limit")
    changed = _decompress(snapshot)
    if sandbox.calls.memory_size() > snapshot.memory_size:
        sandbox.rebuild()  # memory never shrinks: start from a new store
    sandbox.grow_to(snapshot.memory_size)
    sandbox.write_memory(0, baseline.memory)
    if snapshot.memory_size > baseline.size:
        sandbox.write_memory(baseline.size, bytes(snapshot.memory_size - baseline.size))
    for index, at in enumerate(snapshot.offsets):
        sandbox.write_memory(at, changed[index * CHUNK : (index + 1) * CHUNK])
    sandbox.restore_registers(snapshot.stack_pointer)


def check(snapshot: Snapshot, memory_limit: int) -> None:
    """ValueError unless the snapshot's layout is one ``restore`` can apply."""
    size = snapshot.memory_size
    if size <= 0 or size % WASM_PAGE or size > memory_limit:
        raise ValueError("memory size out of range")
    previous = -1
    for at in snapshot.offsets:
        if at % CHUNK or at <= previous or at + CHUNK > size:
            raise ValueError("chunk offsets out of order or range")
        previous = at
    if len(_decompress(snapshot)) != snapshot.raw_size:
        raise ValueError("chunk data of the wrong size")


def _changed_chunks(memory: bytes, base: bytes) -> list[int]:
    """Offsets of the chunks of ``memory`` that differ from ``base`` (zeros past its end)."""
    changed: list[int] = []
    zero_chunk = bytes(CHUNK)
    for block in range(0, len(memory), _BLOCK):
        if memory[block : block + _BLOCK] == base[block : block + _BLOCK]:
            continue
        for page in range(block, min(block + _BLOCK, len(memory)), PAGE):
            if memory[page : page + PAGE] == base[page : page + PAGE]:
                continue
            for at in range(page, page + PAGE, CHUNK):
                chunk = memory[at : at + CHUNK]
                if chunk != (base[at : at + CHUNK] if at < len(base) else zero_chunk):
                    changed.append(at)
    return changed


def _compressor() -> zstandard.ZstdCompressor:
    # Compressor objects are not thread-safe: one per thread.
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_content_size=True)
    return compressor


def _decompress(snapshot: Snapshot) -> bytes:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    if not snapshot.offsets:
        return b""
    try:
        return decompressor.decompress(snapshot.delta, max_output_size=snapshot.raw_size)
    except zstandard.ZstdError as exc:
        raise ValueError(f"damaged chunk data: {exc}") from None


@dataclass(eq=False)
class Lodging:
    """Where a suspended execution's guest state is: an instance, a snapshot, or both.

    ``evict`` (called by an instance at checkout, before anything else runs in it, or when it
    closes) takes the snapshot if it is still needed and leaves the instance pristine;
    ``wake`` puts the state into the instance a resume checked out; ``drop`` forgets it. An
    instance the state left while it sat idle keeps its mark (``Sandbox.lodger``) until its
    next checkout, which then resets it.
    """

    baseline: Callable[[], Baseline]
    tables: HostTables
    holder: Sandbox | None = None
    generation: int = -1
    snapshot: Snapshot | None = None
    done: bool = False  # resumed elsewhere or dropped: nothing of it is needed any more
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def lodge(cls, sandbox: Sandbox, baseline: Callable[[], Baseline]) -> Lodging:
        sandbox.vacate()  # an execution lodged here before is taken out first
        lodging = cls(baseline=baseline, tables=HostTables.of(sandbox), holder=sandbox, generation=sandbox.generation)
        sandbox.lodger = lodging
        return lodging

    @classmethod
    def of_snapshot(cls, snapshot: Snapshot, tables: HostTables, baseline: Callable[[], Baseline]) -> Lodging:
        return cls(baseline=baseline, tables=tables, snapshot=snapshot)

    def evict(self, sandbox: Sandbox, reset: bool) -> None:
        with self.lock:
            if sandbox.lodger is not self:
                return
            if not self.done and self.snapshot is None and self.holder is sandbox:
                self.snapshot = capture(sandbox, self.baseline())
            sandbox.lodger = None
            if self.holder is sandbox:
                self.holder = None
        if reset:
            make_pristine(sandbox, self.baseline())

    def take_snapshot(self) -> Snapshot:
        """The snapshot, taken now if the state is still only in an instance (which keeps it)."""
        with self.lock:
            return self._snapshot()

    def wake(self, sandbox: Sandbox) -> None:
        """Put the state into ``sandbox``, checked out for the resume."""
        if sandbox.lodger is not None and sandbox.lodger is not self:
            sandbox.vacate(reset=False)  # the restore below overwrites everything
        with self.lock:
            untouched = self.holder is sandbox and sandbox.generation == self.generation
            if untouched and sandbox.lodger is self:
                sandbox.lodger = None
                self._finish()
                self.tables.apply(sandbox)
                return
            snapshot = self._snapshot()
            if sandbox.lodger is self:
                sandbox.lodger = None
            self._finish()
        restore(sandbox, snapshot, self.baseline())
        self.tables.apply(sandbox)

    def unlodge(self) -> None:
        """Undo ``lodge``: the execution goes on in its instance after all."""
        with self.lock:
            holder = self.holder
            if holder is not None and holder.lodger is self:
                holder.lodger = None
            self._finish()

    def drop(self) -> None:
        """Forget the state; an instance it is lodged in is reset at its next checkout."""
        with self.lock:
            self._finish()

    def _snapshot(self) -> Snapshot:
        if self.snapshot is None:
            holder = self.holder
            if holder is None or self.done or holder.lodger is not self:
                raise CodedError(ErrorCode.INTERNAL_ERROR, "a suspension lost its state")
            self.snapshot = capture(holder, self.baseline())
        return self.snapshot

    def _finish(self) -> None:
        # A holder still marked keeps the mark: its next checkout resets it.
        self.done = True
        self.snapshot = None
        self.holder = None


def make_pristine(sandbox: Sandbox, baseline: Baseline) -> None:
    """Make ``sandbox`` a pristine instance again, in place."""
    if sandbox.calls.memory_size() > baseline.size:
        sandbox.rebuild()
        return
    sandbox.write_memory(0, baseline.memory)
    sandbox.restore_registers(sandbox.image.stack_pointer)
    sandbox.forget_tables()
