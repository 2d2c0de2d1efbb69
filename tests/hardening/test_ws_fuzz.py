"""WebSocket protocol fuzzing against a live server.

Random JSON, protocol-shaped frames with random fields, random bytes, hand-made frames that
break RFC 6455, huge frames, PING floods, frames after the closing handshake and half-open
connections. Throughout, a bystander client on another panel keeps triggering and checks each
RESULT; after each attack the server must still answer /health/live and speak the protocol
to a fresh client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.hardening.support import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Bystander,
    alive,
    bump,
    connect_sync,
    drain,
    hardening_settings,
    pair_panel,
    pong_answers,
    raw_handshake,
    record,
    start_nexus,
    wait_until,
    ws_frame,
)
from tests.integration.conftest import Live, example
from tests.support.servers import Database

pytestmark = pytest.mark.slow

BODY_LIMIT = 64 * 1024
SERVER_TYPES = {"CONNECTED", "RESULT", "PROGRESS", "PATCH", "EVENT", "VIEW", "ERROR", "PING", "PONG"}
HEARTBEAT_S = 2
SERVER_FAULTS = {"INTERNAL_ERROR", "UNAVAILABLE"}


@pytest.fixture(scope="module")
def live(module_database: tuple[Path, Database]) -> Iterator[Live]:
    tmp, database = module_database
    # The per-socket frame rate is lifted here: these attacks test how frames are handled, and
    # the floods must reach the consumer (tests/integration/test_request_limits.py covers the rate).
    nexus = start_nexus(tmp, database.url, BODY_LIMIT="64kb", HEARTBEAT_SECONDS=str(HEARTBEAT_S),
                        WS_MAX_MESSAGES_PER_SECOND="100000", WS_MESSAGE_BURST="1000000")
    try:
        nexus.create("target", example("counter"))
        nexus.create("todo", example("todo"))
        nexus.create("awkward", example("todo"))
        nexus.create("idle", example("counter"))
        nexus.create("bystander", pair_panel("bystander"))
        yield nexus
    finally:
        nexus.server.terminate()


@pytest.fixture(scope="module")
def bystander(live: Live) -> Iterator[Bystander]:
    watcher = Bystander(live, "bystander").start()
    try:
        yield watcher
    finally:
        watcher.stop()
        record("ws_fuzz", bystander_results=watcher.results, bystander_failures=len(watcher.failures))


def survived(live: Live, bystander: Bystander, results_before: int) -> None:
    assert live.server.process.poll() is None, f"the server died:\n{live.server.log()[-3000:]}"
    assert alive(live), "/health/live stopped answering"
    assert asyncio.run(pong_answers(live, "target"))
    bystander.check(results_before)


def path_for(live: Live, panel_id: str = "target") -> str:
    return f"/ws/workspaces/acme/panels/{panel_id}/?token={live.tokens['alice']}"


# ---------------------------------------------------------------- a reading client


class Client:
    """A synchronous client that checks every frame the server sends."""

    def __init__(self, live: Live, panel_id: str = "target") -> None:
        self.live = live
        self.panel_id = panel_id
        self.socket: Any = None
        self.frames = 0
        self.last_sent: str | bytes = ""
        self.open()

    def open(self) -> None:
        self.socket = connect_sync(self.live.ws_url(self.panel_id), max_size=None)
        hello = json.loads(self.socket.recv(timeout=20))
        assert hello["type"] == "CONNECTED", hello

    def check_frame(self, raw: str | bytes) -> dict[str, Any]:
        assert isinstance(raw, str), f"server sent a binary frame: {raw[:100]!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict) and frame.get("type") in SERVER_TYPES, frame
        if frame["type"] == "ERROR":
            assert isinstance(frame.get("code"), str) and frame["code"], frame
            assert isinstance(frame.get("message"), str) and frame["message"], frame
            # The client's frame is to blame, never the server: no internal error, no "database down".
            assert frame["code"] not in SERVER_FAULTS, f"{frame} for {self.last_sent!r:.300}"
        if frame["type"] == "PING":
            self.socket.send('{"type":"PONG"}')
        return frame

    def sync(self, timeout: float = 15) -> None:
        """PING and read (checking everything) until the PONG: the socket still works."""
        self.socket.send('{"type":"PING"}')
        deadline = time.monotonic() + timeout
        while True:
            frame = self.check_frame(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame["type"] == "PONG":
                return

    def send(self, payload: str | bytes) -> None:
        self.last_sent = payload
        self.socket.send(payload)
        self.frames += 1

    def close(self) -> None:
        self.socket.close()


@pytest.fixture(scope="module")
def clients(live: Live) -> Iterator[dict[str, Client]]:
    readers = {panel_id: Client(live, panel_id) for panel_id in ("target", "todo")}
    try:
        yield readers
    finally:
        for reader in readers.values():
            reader.close()


# ---------------------------------------------------------------- generated frames

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.text(max_size=10), inner, max_size=5), max_leaves=25)
KNOWN_TYPES = st.sampled_from(["TRIGGER", "SET", "SUBSCRIBE", "UNSUBSCRIBE", "PING", "PONG", "RESULT", "trigger", ""])
FIELD_VALUES = {
    "type": KNOWN_TYPES | JSON_VALUES,
    "tool": st.sampled_from(["increment", "reset", "add", "toggle", "remove", "nope", "__proto__"]) | JSON_VALUES,
    "args": st.fixed_dictionaries({}, optional={"by": JSON_VALUES, "id": JSON_VALUES, "zzz": JSON_VALUES})
    | JSON_VALUES,
    "requestId": st.text(max_size=20) | st.integers() | JSON_VALUES,
    "scope": JSON_VALUES,
    "key": st.sampled_from(["count", "double", "input", "todos", "__proto__"]) | JSON_VALUES,
    "value": st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 1000]) | JSON_VALUES,
    "keys": st.lists(st.sampled_from(["count", "double"]) | st.text(max_size=5), max_size=4) | JSON_VALUES,
}
PROTOCOL_SHAPED = st.fixed_dictionaries({"type": FIELD_VALUES["type"]}, optional={
    name: strategy for name, strategy in FIELD_VALUES.items() if name != "type"
})
TEXT_FRAMES = (
    PROTOCOL_SHAPED.map(json.dumps)
    | JSON_VALUES.map(json.dumps)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
    | st.builds(lambda frame, cut: json.dumps(frame)[:cut], PROTOCOL_SHAPED, st.integers(0, 40))
)


@pytest.mark.parametrize("panel_id", ["target", "todo"])
def test_random_json_and_protocol_shaped_frames(live: Live, bystander: Bystander, clients: dict[str, Client],
                                                panel_id: str) -> None:
    before = bystander.results
    client = clients[panel_id]

    @hardening_settings(80)
    @given(frames=st.lists(TEXT_FRAMES, min_size=1, max_size=5))
    def attack(frames: list[str]) -> None:
        for frame in frames:
            client.send(frame)
            bump("ws_fuzz", "text_frames")
        client.sync()

    attack()
    survived(live, bystander, before)


def test_random_binary_and_text_payloads(live: Live, bystander: Bystander, clients: dict[str, Client]) -> None:
    before = bystander.results
    client = clients["target"]

    @hardening_settings(60)
    @given(payload=st.binary(max_size=512) | st.text(alphabet=st.characters(codec="utf-8"), max_size=512))
    def attack(payload: bytes | str) -> None:
        client.send(payload)
        bump("ws_fuzz", "binary_or_text_frames")
        client.sync()

    attack()
    survived(live, bystander, before)


# Frames a conforming client never sends: reserved opcodes and bits, unmasked frames,
# oversized or fragmented control frames, invalid UTF-8, stray continuations, truncation.
RAW_FRAMES = st.builds(
    ws_frame,
    opcode=st.sampled_from([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, 0x3, 0x7, 0xB, 0xF]),
    payload=st.binary(max_size=300) | st.sampled_from([b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80", b"{}"]),
    fin=st.booleans(),
    mask=st.booleans(),
    rsv=st.integers(0, 7),
)


def test_raw_frames_that_break_the_rfc(live: Live, bystander: Bystander) -> None:
    before = bystander.results
    close_codes: dict[int, int] = {}

    @hardening_settings(60)
    @given(frames=st.lists(RAW_FRAMES, min_size=1, max_size=4), truncate=st.integers(0, 8))
    def attack(frames: list[bytes], truncate: int) -> None:
        sock = raw_handshake(live.server.port, path_for(live))
        try:
            data = b"".join(frames)
            sock.sendall(data[: len(data) - truncate] if truncate < len(data) else data)
            answer = drain(sock, 0.3)
        finally:
            sock.close()
        bump("ws_fuzz", "raw_frames", len(frames))
        code = close_code(answer)
        if code is not None:
            assert code in {1000, 1002, 1003, 1007, 1009, 4401}, f"unexpected close code {code}"
            close_codes[code] = close_codes.get(code, 0) + 1

    attack()
    record("ws_fuzz", raw_close_codes=dict(sorted(close_codes.items())))
    survived(live, bystander, before)


def close_code(stream: bytes) -> int | None:
    """The code of the first server close frame found in a byte stream (server frames are unmasked)."""
    index = 0
    while index + 2 <= len(stream):
        opcode, length = stream[index] & 0x0F, stream[index + 1] & 0x7F
        header = 2
        if length == 126:
            length, header = struct.unpack("!H", stream[index + 2:index + 4])[0], 4
        elif length == 127:
            length, header = struct.unpack("!Q", stream[index + 2:index + 10])[0], 10
        if opcode == OP_CLOSE:
            payload = stream[index + header:index + header + length]
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        index += header + length
    return None


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"], ids=["NUL", "lone surrogate"])
def test_awkward_text_set_over_websocket(live: Live, bystander: Bystander, text: str) -> None:
    """A SET of text the database may refuse: stored faithfully or refused as the client's fault."""
    before = bystander.results
    client = Client(live, "awkward")
    try:
        client.send(json.dumps({"type": "SET", "key": "input", "value": text, "requestId": "awkward"}))
        deadline = time.monotonic() + 15
        while True:
            frame = json.loads(client.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame.get("requestId") == "awkward":
                break
    finally:
        client.close()
    state = live.api("GET", "/api/v1/workspaces/acme/panels/awkward/state/")
    assert frame["type"] in ("RESULT", "ERROR"), frame
    assert frame.get("code") not in SERVER_FAULTS, f"{frame}; reading the state afterwards: {state.status_code}"
    assert state.status_code == 200, f"the panel's state became unreadable: {state.status_code}"
    if frame["type"] == "RESULT":
        assert state.json()["state"]["input"] == text
    survived(live, bystander, before)


# ---------------------------------------------------------------- huge frames


@pytest.mark.parametrize("size", [BODY_LIMIT + 1, 1024 * 1024, 10 * 1024 * 1024])
def test_huge_frames_close_with_1009(live: Live, bystander: Bystander, size: int) -> None:
    before = bystander.results
    socket_ = connect_sync(live.ws_url("target"), max_size=None)
    json.loads(socket_.recv(timeout=20))
    with pytest.raises(ConnectionClosed) as closed:
        socket_.send(json.dumps({"type": "PING", "pad": "x" * size}))
        for _ in range(50):
            socket_.recv(timeout=15)
    received = closed.value.rcvd
    assert received is not None and received.code == 1009, closed.value
    bump("ws_fuzz", "huge_frame_bytes", size)
    survived(live, bystander, before)


def test_announced_huge_frame_that_never_arrives(live: Live, bystander: Bystander) -> None:
    """A header announcing 2**62 bytes, then silence: refused at once, nothing buffered."""
    before = bystander.results
    sock = raw_handshake(live.server.port, path_for(live))
    try:
        sock.sendall(bytes([0x81, 0xFF]) + struct.pack("!Q", 2**62) + b"\x00\x00\x00\x00" + b"x" * 100)
        code = close_code(drain(sock, 3))
    finally:
        sock.close()
    assert code == 1009
    survived(live, bystander, before)


# ---------------------------------------------------------------- floods


FLOOD = 5000


def test_ping_flood_is_answered_in_full(live: Live, bystander: Bystander) -> None:
    before = bystander.results
    flooder = connect_sync(live.ws_url("target"), max_size=None)
    json.loads(flooder.recv(timeout=20))
    started = time.monotonic()
    for _ in range(FLOOD):
        flooder.send('{"type":"PING"}')
    pongs = 0
    deadline = time.monotonic() + 120
    while pongs < FLOOD and time.monotonic() < deadline:
        frame = json.loads(flooder.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["type"] == "PONG":
            pongs += 1
        elif frame["type"] == "PING":
            flooder.send('{"type":"PONG"}')
    elapsed = time.monotonic() - started
    flooder.close()
    record("ws_fuzz", ping_flood=FLOOD, pongs=pongs, ping_flood_per_s=round(FLOOD / elapsed))
    assert pongs == FLOOD
    survived(live, bystander, before)


def test_flooding_client_that_never_reads(live: Live, bystander: Bystander) -> None:
    """20,000 PINGs from a client that never reads its PONGs: the server must not stall for others."""
    before = bystander.results
    sock = raw_handshake(live.server.port, path_for(live))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = ws_frame(OP_TEXT, b'{"type":"PING"}')
    sent = 0
    sock.settimeout(5)
    try:
        for _ in range(20_000):
            sock.sendall(ping)
            sent += 1
    except OSError:
        pass  # the server stopped reading from us: that is its right
    try:
        bystander.check(before)
        assert alive(live)
    finally:
        sock.close()
    record("ws_fuzz", unread_flood_sent=sent)
    survived(live, bystander, before)


# ---------------------------------------------------------------- after close, half-open


def state_version(live: Live, panel_id: str = "target") -> int:
    return int(live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/state/").json()["stateVersion"])


def test_frames_after_close_are_ignored(live: Live, bystander: Bystander) -> None:
    before = bystander.results
    version = state_version(live)
    sock = raw_handshake(live.server.port, path_for(live))
    trigger = json.dumps({"type": "TRIGGER", "tool": "increment", "args": {}, "requestId": "late"}).encode()
    try:
        drain(sock, 0.3)  # CONNECTED
        sock.sendall(ws_frame(OP_CLOSE, struct.pack("!H", 1000)))
        for _ in range(20):
            sock.sendall(ws_frame(OP_TEXT, trigger))
        answer = drain(sock, 2)
    except OSError:
        answer = b""
    finally:
        sock.close()
    assert b"RESULT" not in answer, "a frame sent after the close was executed"
    time.sleep(0.5)
    assert state_version(live) == version, "a TRIGGER sent after the close changed the panel"
    survived(live, bystander, before)


def client_count(live: Live, panel_id: str) -> int:
    return int(live.api("GET", f"/api/v1/workspaces/acme/panels/{panel_id}/").json()["clientCount"])


def test_half_open_connections(live: Live, bystander: Bystander) -> None:
    """Stalled handshakes, stalled frames, silent and reset connections: held, then let go."""
    before = bystander.results
    port = live.server.port
    baseline = client_count(live, "idle")
    stalled_upgrades = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(30)]
    for sock in stalled_upgrades:
        sock.sendall(b"GET /ws/workspaces/acme/panels/idle/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")
    half_frames = [raw_handshake(port, path_for(live, "idle")) for _ in range(30)]
    for sock in half_frames:
        sock.sendall(bytes([0x81, 0xFE, 0x10]))  # a text frame header cut in the middle of its length
    silent = [raw_handshake(port, path_for(live, "idle")) for _ in range(30)]
    reset = [raw_handshake(port, path_for(live, "idle")) for _ in range(30)]
    assert wait_until(lambda: client_count(live, "idle") >= baseline + 60, 15), client_count(live, "idle")
    for sock in reset:  # vanish with a TCP reset instead of a closing handshake
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    try:
        bystander.check(before)
        assert alive(live)
        assert asyncio.run(pong_answers(live, "target"))
        # Silent clients miss two heartbeats and are closed; reset ones are gone at once.
        assert wait_until(lambda: client_count(live, "idle") <= baseline, 8 * HEARTBEAT_S + 10), (
            f"presence leaked: {client_count(live, 'idle')} clients left, {baseline} expected"
        )
    finally:
        for sock in stalled_upgrades + half_frames + silent:
            sock.close()
    record("ws_fuzz", half_open_connections=120)
    survived(live, bystander, before)


def test_health_after_the_attacks(live: Live, bystander: Bystander) -> None:
    body = httpx.get(f"{live.server.url}/health", timeout=10).json()
    assert body["status"] == "healthy"
    assert body["runtime"]["activeInstances"] == 0
    assert bystander.failures == []
