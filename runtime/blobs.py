"""Exported suspensions: a self-contained, authenticated blob that another process resumes.

Layout: ``MAGIC | guest build (32 bytes) | header length (u32) | header JSON | chunk data |
HMAC-SHA256``. The MAC, keyed by the caller, covers everything before it and is checked
before anything else is read: a blob that fails it, was cut short, comes from another guest
build, or whose snapshot does not fit this runtime's baseline is refused with INVALID_ARGS
and nothing runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

from .errors import CodedError, ErrorCode
from .execution import ExecutionContext
from .hibernation import CHUNK, Baseline, HostTables, Snapshot, check
from .image import GLUE_PATH

MAGIC = b"NXSUSP\x01\n"
FORMAT_VERSION = 1
_MAC_BYTES = 32
_BUILD_BYTES = 32
_HEAD = len(MAGIC) + _BUILD_BYTES + 4


def guest_build(wasm_sha256: str, stepper_source: bytes) -> bytes:
    """What a snapshot depends on: the guest module, the glue, the stepper, the chunk format."""
    digest = hashlib.sha256(f"nexus-guest|{FORMAT_VERSION}|{CHUNK}|{wasm_sha256}|".encode())
    digest.update(GLUE_PATH.read_bytes())
    digest.update(b"|")
    digest.update(stepper_source)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class Exported:
    """Everything a blob carries."""

    context: ExecutionContext
    code: str
    call_id: int
    call: list[Any]
    timeout_ms: int
    used_ms: float
    remaining_s: float
    snapshot: Snapshot
    tables: HostTables


def encode(item: Exported, build: bytes, baseline: Baseline, key: bytes) -> bytes:
    ctx, snapshot, tables = item.context, item.snapshot, item.tables
    header = {
        "v": FORMAT_VERSION,
        "panel_id": ctx.panel_id,
        "handler_name": ctx.handler_name,
        "args": dict(ctx.args),
        "capabilities": list(ctx.capabilities),
        "scope": None if ctx.scope is None else dict(ctx.scope),
        "extensions": ctx.extension_methods,
        "tenant": ctx.tenant,
        "code": item.code,
        "call_id": item.call_id,
        "call": item.call,
        "timeout_ms": item.timeout_ms,
        "used_ms": item.used_ms,
        "deadline": time.time() + item.remaining_s,
        "memory_size": snapshot.memory_size,
        "stack_pointer": snapshot.stack_pointer,
        "offsets": list(snapshot.offsets),
        "baseline": baseline.digest_outside(snapshot.offsets),
        "handlers": tables.handlers,
        "grants": [[[list(key[0]), key[1]], slot] for key, slot in tables.capabilities[1]],
        "grant_table": [tables.capabilities[0], tables.capabilities[2], tables.capabilities[3]],
        "last_args": tables.last_args,
        "needs_seed": tables.needs_seed,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + build + struct.pack("<I", len(head)) + head + snapshot.delta
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode(blob: object, build: bytes, baseline: Baseline, key: bytes, memory_limit: int) -> Exported:
    """The suspension in ``blob``; CodedError(INVALID_ARGS) for anything this runtime must not resume."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise _refused("a suspension blob is bytes")
    data = bytes(blob)
    if len(data) < _HEAD + _MAC_BYTES:
        raise _refused("the suspension blob is truncated")
    body, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise _refused("the suspension blob is damaged, truncated or not signed with this key")
    if not body.startswith(MAGIC):
        raise _refused("not a suspension blob")
    if body[len(MAGIC) : len(MAGIC) + _BUILD_BYTES] != build:
        raise _refused("the suspension comes from another guest build")
    (size,) = struct.unpack_from("<I", body, len(MAGIC) + _BUILD_BYTES)
    try:
        header = json.loads(body[_HEAD : _HEAD + size])
        item = _from_header(header, body[_HEAD + size :])
        check(item.snapshot, memory_limit)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _refused(f"the suspension blob is malformed: {exc}") from None
    if header["baseline"] != baseline.digest_outside(item.snapshot.offsets):
        raise _refused("the suspension comes from a runtime with another guest image or memory limit")
    return item


def _from_header(header: dict[str, Any], delta: bytes) -> Exported:
    if header["v"] != FORMAT_VERSION:
        raise ValueError("unknown format version")
    context = ExecutionContext(
        panel_id=header["panel_id"],
        handler_name=header["handler_name"],
        state={},
        args=header["args"],
        capabilities=header["capabilities"],
        scope=header["scope"],
        extensions=header["extensions"],
        tenant=header["tenant"],
    )
    capacity, free, next_slot = header["grant_table"]
    grants = [[[list(key[0]), str(key[1])], int(slot)] for key, slot in header["grants"]]
    tables = HostTables(
        handlers=header["handlers"],
        capabilities=[capacity, grants, free, next_slot],
        last_args=header["last_args"] if isinstance(header["last_args"], str) else None,
        needs_seed=bool(header["needs_seed"]),
    )
    call = header["call"]
    if not (isinstance(call, list) and len(call) == 3 and isinstance(call[0], str) and isinstance(call[1], str)):
        raise ValueError("malformed pending call")
    if not isinstance(header["code"], str) or type(header["call_id"]) is not int:
        raise ValueError("malformed handler")
    return Exported(
        context=context,
        code=header["code"],
        call_id=header["call_id"],
        call=call,
        timeout_ms=int(header["timeout_ms"]),
        used_ms=float(header["used_ms"]),
        remaining_s=float(header["deadline"]) - time.time(),
        snapshot=Snapshot(
            memory_size=int(header["memory_size"]),
            stack_pointer=int(header["stack_pointer"]),
            offsets=tuple(int(at) for at in header["offsets"]),
            delta=delta,
        ),
        tables=tables,
    )


def _refused(message: str) -> CodedError:
    return CodedError(ErrorCode.INVALID_ARGS, message)
