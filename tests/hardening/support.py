"""Shared pieces of the hardening suites: servers, raw WebSocket frames, figures for the report.

The suites attack real server processes on loopback (the same harness as the integration
tests), so everything here talks to 127.0.0.1 only and bounds every wait.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Live
from tests.support.servers import Server, base_env, free_port, manage, start_server, unique_prefix

# ---------------------------------------------------------------- Hypothesis profiles (registered in conftest.py)

PROFILE_SCALE = {"hardening": 1.0, "hardening-quick": 0.25, "hardening-deep": 4.0}


def active_profile() -> str:
    name = os.environ.get("NEXUS_HYPOTHESIS_PROFILE", "hardening")
    if name not in PROFILE_SCALE:
        raise ValueError(f"NEXUS_HYPOTHESIS_PROFILE={name!r}: choose one of {', '.join(PROFILE_SCALE)}")
    return name


def hardening_settings(examples: int, **overrides: Any) -> Any:
    """The active profile with ``examples`` scaled by it (at least 3)."""
    from hypothesis import settings

    name = active_profile()
    scaled = max(3, round(examples * PROFILE_SCALE[name]))
    return settings(settings.get_profile(name), max_examples=scaled, **overrides)


# ---------------------------------------------------------------- figures for the closing report

FIGURES: dict[str, dict[str, Any]] = {}


def record(suite: str, **figures: Any) -> None:
    """Keep a figure for the end-of-run summary (printed by conftest.pytest_terminal_summary)."""
    FIGURES.setdefault(suite, {}).update(figures)


def bump(suite: str, name: str, amount: int = 1) -> None:
    bucket = FIGURES.setdefault(suite, {})
    bucket[name] = int(bucket.get(name, 0)) + amount


# ---------------------------------------------------------------- panels used by several suites

# Two keys written in one segment: b == 2 * a holds after every committed change, so a
# half-applied batch would show.
PAIR_PANEL = """<NexusPanel id="pair" title="Pair">
  <Data>
    <State name="a" type="number" default="0" />
    <State name="b" type="number" default="0" />
  </Data>
  <Logic>
    <Tool name="bump">
      <Handler>$state.a = $state.a + 1; $state.b = $state.b + 2; return $state.a;</Handler>
    </Tool>
  </Logic>
  <View><Metric label="a" value="{$state.a}" /></View>
</NexusPanel>"""

# A handler that tries everything its (empty) capability block does not grant.
GREEDY_PANEL = """<NexusPanel id="greedy" title="Greedy">
  <Data>
    <State name="allowed" type="number" default="0" />
    <State name="secret" type="number" default="0" />
    <State name="items" type="list" default="[]" />
  </Data>
  <Logic>
    <Extension name="nexus.http" alias="http" />
    <Tool name="writeSecret">
      <Capabilities><Capability type="state:write" scope="allowed" /></Capabilities>
      <Handler>$state.allowed = 1; $state.secret = 42; return 'escaped';</Handler>
    </Tool>
    <Tool name="pushItem">
      <Capabilities><Capability type="state:read" scope="items" /></Capabilities>
      <Handler>$state.items.push(1); return 'escaped';</Handler>
    </Tool>
    <Tool name="emitEvent">
      <Capabilities><Capability type="state:write" scope="allowed" /></Capabilities>
      <Handler>$emit('leak', 1); return 'escaped';</Handler>
    </Tool>
    <Tool name="moveView">
      <Capabilities><Capability type="state:write" scope="allowed" /></Capabilities>
      <Handler>$view.focus('secretBox'); return 'escaped';</Handler>
    </Tool>
    <Tool name="callOut">
      <Capabilities><Capability type="state:write" scope="allowed" /></Capabilities>
      <Handler>await $ext.http.get('https://example.com/'); return 'escaped';</Handler>
    </Tool>
    <Tool name="dynamicWrite">
      <Handler>const k = ['sec', 'ret'].join(''); $state[k] = 7; return 'escaped';</Handler>
    </Tool>
  </Logic>
  <View>
    <Metric id="secretBox" label="allowed" value="{$state.allowed}" />
  </View>
</NexusPanel>"""


def pair_panel(panel_id: str) -> str:
    return PAIR_PANEL.replace('id="pair"', f'id="{panel_id}"', 1)


# ---------------------------------------------------------------- servers

PASSWORD = "hardening-password"

_PROVISION = """
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from workspaces.models import Membership, Workspace
members = {members!r}
users = {{}}
for username, workspace, role in members:
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_password({password!r}); user.save()
    users[username] = user
    space, _ = Workspace.objects.get_or_create(slug=workspace, defaults={{"name": workspace}})
    Membership.objects.update_or_create(user=user, workspace=space, defaults={{"role": role}})
for name, username, claims in {tokens!r}:
    token = AccessToken.for_user(users[username])
    for key, value in claims.items():
        token[key] = value
    print("TOKEN " + name + " " + str(token))
print("TOKEN alice_refresh " + str(RefreshToken.for_user(users["alice"])))
"""

MEMBERS = [
    ("alice", "acme", "owner"),
    ("bob", "other", "owner"),
    ("carol", "acme", "viewer"),
    ("dave", "acme", "editor"),
]
TOKENS = [
    ("alice", "alice", {}),
    ("bob", "bob", {}),
    ("carol", "carol", {}),
    ("dave", "dave", {}),
    ("alice_other_ws", "alice", {"workspace_id": "other"}),
    ("alice_read_only", "alice", {"permissions": ["panel:read"]}),
    ("alice_kernel", "alice", {"workspace_id": "acme"}),
    ("bob_kernel", "bob", {"workspace_id": "other"}),
]


def provision_all(env: dict[str, str]) -> dict[str, str]:
    """Migrate, create the four users and their workspaces, return every token, in two processes."""
    manage("migrate", "--noinput", env=env)
    script = _PROVISION.format(members=MEMBERS, tokens=TOKENS, password=PASSWORD)
    done = manage("shell", "-c", script, env=env)
    tokens = {}
    for line in done.stdout.splitlines():
        if line.startswith("TOKEN "):
            _, name, value = line.split(" ", 2)
            tokens[name] = value
    if "alice" not in tokens:
        raise RuntimeError(f"provisioning printed no tokens:\n{done.stdout}\n{done.stderr}")
    return tokens


def start_nexus(tmp: Path, database_url: str, **settings: str) -> Live:
    """A provisioned server process; ``Live`` gives .api(), .create(), .connect() and the tokens."""
    env = base_env(DATABASE_URL=database_url, MAX_PANELS="60", REDIS_PREFIX=unique_prefix(), **settings)
    tokens = provision_all(env)
    return Live(start_server(env, tmp), tokens, env)


def restart(live: Live, tmp: Path) -> Server:
    """A fresh process on the same database and settings (the old one must be gone)."""
    live.server = start_server(live.env, tmp)
    return live.server


def vm_rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def health(live: Live) -> dict[str, Any]:
    response = httpx.get(f"{live.server.url}/health", timeout=10)
    body: dict[str, Any] = response.json()
    body["_status"] = response.status_code
    return body


def alive(live: Live) -> bool:
    try:
        return httpx.get(f"{live.server.url}/health/live", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# ---------------------------------------------------------------- protocol clients


async def trigger(socket: Any, tool: str, request_id: Any, args: dict[str, Any] | None = None,
                  timeout: float = 30) -> dict[str, Any]:
    """Send a TRIGGER and return its RESULT or ERROR (answering heartbeats on the way)."""
    await socket.send(json.dumps({"type": "TRIGGER", "tool": tool, "args": args or {}, "requestId": request_id}))

    async def answer() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] == "PING":
                await socket.send('{"type":"PONG"}')
            elif frame["type"] in ("RESULT", "ERROR") and frame.get("requestId") == request_id:
                return frame

    return await asyncio.wait_for(answer(), timeout)


class Bystander:
    """A client on another panel that keeps triggering while others attack, checking every answer.

    It runs in a thread of its own (so sync and async tests can use it alike). Each answer
    must be a successful RESULT whose return value is exactly one more than the last.
    """

    def __init__(self, live: Live, panel_id: str, interval: float = 0.1) -> None:
        self.live = live
        self.panel_id = panel_id
        self.interval = interval
        self.results = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bystander-{panel_id}", daemon=True)

    def _answer(self, connection: Any, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            frame: dict[str, Any] = json.loads(connection.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame["type"] == "PING":
                connection.send('{"type":"PONG"}')
            elif frame["type"] in ("RESULT", "ERROR") and frame.get("requestId") == request_id:
                return frame

    def _run(self) -> None:
        connection = None
        try:
            connection = connect_sync(self.live.ws_url(self.panel_id))
            hello = json.loads(connection.recv(timeout=20))
            expected = int(hello["state"]["a"]) + 1
            while not self._stop.is_set():
                request_id = f"b{self.results}"
                connection.send(json.dumps({"type": "TRIGGER", "tool": "bump", "args": {}, "requestId": request_id}))
                answer = self._answer(connection, request_id)
                if answer["type"] != "RESULT" or answer["status"] != "success":
                    self.failures.append(f"bystander got {answer}")
                elif answer["returnValue"] != expected:
                    self.failures.append(f"bystander expected {expected}, got {answer['returnValue']}")
                expected = int(answer.get("returnValue") or expected) + 1
                self.results += 1
                self._stop.wait(self.interval)
        except Exception as exc:  # any break in the bystander's service fails the suite
            self.failures.append(f"bystander broke: {type(exc).__name__}: {exc}")
        finally:
            if connection is not None:
                connection.close()

    def start(self) -> Bystander:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def check(self, results_before: int, wait_s: float = 15) -> None:
        """No failure so far, and at least one more correct RESULT than ``results_before``."""
        wait_until(lambda: self.results > results_before or bool(self.failures), wait_s, 0.05)
        assert self.failures == [], self.failures
        assert self.results > results_before, "the bystander got no RESULT while the attack ran"


# ---------------------------------------------------------------- raw WebSocket frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """One WebSocket frame as a client would put it on the wire (RFC 6455 section 5.2)."""
    head = bytes([(0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def raw_handshake(port: int, path: str, timeout: float = 10) -> socket.socket:
    """Open a TCP connection and complete the WebSocket upgrade by hand; returns the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"server closed during the handshake: {answer!r}")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {answer[:200]!r}")
    return sock


def drain(sock: socket.socket, seconds: float) -> bytes:
    """Read whatever the server sends for a while (or until it closes)."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    return received


async def pong_answers(live: Live, panel_id: str) -> bool:
    """A fresh client can connect and gets PONG for PING: the server still speaks the protocol."""
    socket = await live.connect(panel_id)
    try:
        await socket.send('{"type":"PING"}')
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == "PONG":
                return True
    finally:
        await socket.close()


# ---------------------------------------------------------------- a Redis of our own


class PrivateRedis:
    """A redis-server on a free loopback port that a test may stop and start again.

    Never the machine's shared Redis: the faults suite takes this one down on purpose.
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def connect_sync(url: str, **kwargs: Any) -> Any:
    """A synchronous client connection; the caller closes it."""
    from websockets.sync.client import connect

    return connect(url, open_timeout=20, **kwargs).__enter__()


__all__ = [
    "FIGURES",
    "GREEDY_PANEL",
    "PAIR_PANEL",
    "PASSWORD",
    "PROFILE_SCALE",
    "Bystander",
    "Live",
    "PrivateRedis",
    "active_profile",
    "alive",
    "bump",
    "connect_sync",
    "drain",
    "hardening_settings",
    "health",
    "pair_panel",
    "pong_answers",
    "private_redis",
    "provision_all",
    "raw_handshake",
    "record",
    "restart",
    "start_nexus",
    "trigger",
    "vm_rss_kib",
    "wait_until",
    "ws_frame",
]
