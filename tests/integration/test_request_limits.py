"""What enters a live server is bounded: bodies without a length, deep JSON, frame floods."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from pathlib import Path

from tests.integration.conftest import Live, receive_until

CHUNK = 64 * 1024
UPLOAD_BYTES = 48 * 1024 * 1024  # far past the live server's BODY_LIMIT of 64 KiB
CONNECT_TIMEOUT_S = 10


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _chunked_upload(port: int, path: str, total: int) -> tuple[int, bytes]:
    """Stream ``total`` bytes with chunked encoding; (bytes the server took, its answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    piece = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
    sent = 0
    answer = b""
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
            sock.sendall(piece)
            sent += CHUNK
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return sent, answer


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(live: Live) -> None:
    pid = live.server.process.pid
    before = _rss_bytes(pid)
    sent, answer = _chunked_upload(live.server.port, "/api/v1/auth/token/", UPLOAD_BYTES)
    grown = _rss_bytes(pid) - before
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # The server stopped reading at the limit: the client could not push the whole body, and
    # the server's memory did not take it in.
    assert sent < UPLOAD_BYTES // 4, sent
    assert grown < 16 * 1024 * 1024, grown
    # The server still serves.
    assert live.api("GET", "/api/v1/workspaces/").status_code == 200


def test_a_chunked_body_within_the_limit_is_served(live: Live) -> None:
    body = json.dumps({"username": "alice", "password": "wrong"}).encode()
    sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=CONNECT_TIMEOUT_S)
    sock.sendall(
        b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    )
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:300]


def test_a_declared_length_over_the_limit_is_refused_before_the_body(live: Live) -> None:
    sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=CONNECT_TIMEOUT_S)
    sock.sendall(
        b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900000000\r\n\r\n"
    )
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]


def test_a_deeply_nested_frame_is_an_error_and_the_socket_stays(live: Live) -> None:
    async def scenario() -> None:
        socket_ = await live.connect("counter")
        try:
            for depth in (65, 20_000):
                await socket_.send('{"type":"PING","x":' + "[" * depth + "]" * depth + "}")
                error = await receive_until(socket_, "ERROR")
                assert error["code"] == "INVALID_MESSAGE", error
                assert "64" in error["message"]
            await socket_.send(json.dumps({"type": "PING", "x": json.loads("[" * 60 + "]" * 60)}))
            await receive_until(socket_, "PONG")
        finally:
            await socket_.close()

    asyncio.run(scenario())


def test_a_burst_within_the_frame_bucket_is_served(live: Live) -> None:
    """The default bucket (200 at once) takes a burst of a hundred triggers without a refusal."""

    async def scenario() -> None:
        socket_ = await live.connect("counter")
        try:
            for index in range(100):
                await socket_.send(json.dumps({"type": "TRIGGER", "tool": "increment", "args": {},
                                               "requestId": index}))
            results = 0
            while results < 100:
                frame = json.loads(await asyncio.wait_for(socket_.recv(), 30))
                assert frame["type"] != "ERROR", frame
                results += frame["type"] == "RESULT"
        finally:
            await socket_.close()

    asyncio.run(scenario())


def test_a_frame_flood_gets_errors_and_then_close_1008(live: Live) -> None:
    import websockets

    async def scenario() -> None:
        socket_ = await live.connect("counter")
        refused: list[dict[str, object]] = []
        try:
            for index in range(600):  # bounded: 200 taken, then refusals, then the close
                await socket_.send(json.dumps({"type": "PING", "requestId": index}))
            while True:
                frame = json.loads(await asyncio.wait_for(socket_.recv(), 30))
                if frame["type"] == "ERROR":
                    refused.append(frame)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008, closed
        assert refused and all(frame["code"] == "THROTTLED" for frame in refused)
        assert "requestId" in refused[0]

    asyncio.run(scenario())
