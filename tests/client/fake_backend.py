"""A stand-in for the Nexus server, enough to drive the browser client in tests.

FakeProtocolServer speaks the WebSocket protocol of docs/protocol.md on 127.0.0.1 (with the
`websockets` package, in a thread of its own) and runs Python versions of the sample
panels' tools. HarnessSite serves the static client files, harness pages and the
state endpoint used for re-sync, also on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

JSON = dict[str, Any]


class ToolError(Exception):
    """A handler failure: becomes a RESULT with status error."""


@dataclass
class ToolRun:
    """What a fake tool handler can do: change state, emit events, commit, wait."""

    server: FakeProtocolServer
    state: JSON
    events: list[tuple[str, Any]] = field(default_factory=list)

    def emit(self, name: str, payload: Any) -> None:
        self.events.append((name, payload))

    async def commit(self) -> None:
        await self.server.commit(self.state)

    async def gate(self, name: str) -> None:
        await self.server.wait_gate(name)


Tool = Callable[[ToolRun, JSON], Awaitable[Any]]


# ---------------------------------------------------------------- sample panels


async def counter_increment(run: ToolRun, args: JSON) -> Any:
    run.state["count"] = run.state["count"] + args.get("by", 1)
    run.emit("changed", run.state["count"])
    return run.state["count"]


async def counter_reset(run: ToolRun, args: JSON) -> Any:
    run.state["count"] = 0
    return None


async def todo_add(run: ToolRun, args: JSON) -> Any:
    text = str(run.state["input"]).strip()
    if not text:
        run.emit("toast", {"type": "warn", "message": "Nothing to add"})
        return None
    run.state["todos"] = [*run.state["todos"], {"id": run.state["nextId"], "text": text, "done": False}]
    run.state["nextId"] += 1
    run.state["input"] = ""
    return run.state["nextId"] - 1


async def todo_toggle(run: ToolRun, args: JSON) -> Any:
    todos = copy.deepcopy(run.state["todos"])
    for todo in todos:
        if todo["id"] == args.get("id"):
            todo["done"] = not todo["done"]
            run.state["todos"] = todos
            return None
    raise ToolError(f"No todo {args.get('id')}")


async def todo_remove(run: ToolRun, args: JSON) -> Any:
    run.state["todos"] = [t for t in run.state["todos"] if t["id"] != args.get("id")]
    return None


async def monitor_check(run: ToolRun, args: JSON) -> Any:
    run.state["loading"] = True
    await run.commit()
    await run.gate("checkHealth.result")
    started = 1_760_000_000_000 + 1000 * len(run.state["history"])
    run.state["status"] = "online"
    run.state["history"] = [*run.state["history"], {"t": started, "ms": 40 + 7 * len(run.state["history"])}]
    run.state["logs"] = [*run.state["logs"], f"2025-10-09T08:53:{len(run.state['logs']):02d}Z 200"]
    run.state["loading"] = False
    return run.state["status"]


async def monitor_clear(run: ToolRun, args: JSON) -> Any:
    run.state["logs"] = []
    return None


async def gallery_noop(run: ToolRun, args: JSON) -> Any:
    return None


async def gallery_restart(run: ToolRun, args: JSON) -> Any:
    run.emit("toast", {"type": "success", "message": f"Restarted {args.get('name')}"})
    return args.get("name")


def counter_computed(state: JSON) -> None:
    state["double"] = state["count"] * 2


def todo_computed(state: JSON) -> None:
    state["itemCount"] = len(state["todos"])


@dataclass(frozen=True)
class FakePanelKind:
    tools: dict[str, Tool]
    initial_state: JSON
    computed: Callable[[JSON], None] | None = None


PANEL_KINDS: dict[str, FakePanelKind] = {
    "counter": FakePanelKind(
        tools={"increment": counter_increment, "reset": counter_reset},
        initial_state={"count": 0},
        computed=counter_computed,
    ),
    "todo": FakePanelKind(
        tools={"add": todo_add, "toggle": todo_toggle, "remove": todo_remove},
        initial_state={"todos": [], "input": "", "nextId": 1},
        computed=todo_computed,
    ),
    "monitor": FakePanelKind(
        tools={"checkHealth": monitor_check, "clearLogs": monitor_clear},
        initial_state={"status": "unknown", "loading": False, "logs": [], "history": []},
    ),
    "gallery": FakePanelKind(
        tools={"noop": gallery_noop, "restart": gallery_restart},
        initial_state={
            "requests": 1250,
            "trend": 12,
            "latency": 48.5,
            "mode": "maintenance",
            "name": "Ada",
            "limit": 5,
            "enabled": False,
            "services": [
                {"name": "api", "ok": True, "ms": 31},
                {"name": "worker", "ok": False, "ms": 250},
                {"name": "db", "ok": True, "ms": 4},
            ],
            "series": [{"t": i, "v": v} for i, v in enumerate([3, 5, 4, 8, 6, 9, 12, 10])],
            "bars": [{"name": "GET", "count": 120}, {"name": "POST", "count": 45}, {"name": "DELETE", "count": 8}],
            "logs": ["info: service started", "error: disk almost full", "info: request served", "error: timeout"],
            "code": "const x = 1;\nreturn x + 1;",
        },
    ),
}


# ------------------------------------------------------------ protocol server


class FakeProtocolServer:
    """The panel's WebSocket endpoint, run on its own event loop thread."""

    def __init__(self, kind: str, state: JSON | None = None, version: int = 1) -> None:
        self.kind = PANEL_KINDS[kind]
        self.state: JSON = copy.deepcopy(state if state is not None else self.kind.initial_state)
        self.recompute(self.state)
        self.version = version
        self.fail_next: str | None = None
        self.error_frame_next: JSON | None = None
        self.close_code_on_connect: int | None = None
        self.send_away_on_connect = 0  # this many next connections get RECONNECT + 1012, like a draining server
        self.sent_away_at = 0.0
        self.received: list[JSON] = []
        self.connections_total = 0
        self.connection_times: list[float] = []
        self.silent = False
        self._lock = threading.Lock()
        self._clients: set[ServerConnection] = set()
        self._gates: dict[str, asyncio.Event] = {}
        self._connected_gate: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-ws", daemon=True)
        self._server: Server | None = None
        self.port = 0

    # lifecycle ---------------------------------------------------------------

    def start(self) -> FakeProtocolServer:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=1_000_000)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self._stop(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    async def _stop(self) -> None:
        for gate in self._gates.values():
            gate.set()
        if self._connected_gate:
            self._connected_gate.set()
        if self._server:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/workspaces/test/panels/panel/"

    def call(self, coro: Awaitable[Any], timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout)

    # controls used by tests ---------------------------------------------------

    def frames(self, frame_type: str | None = None) -> list[JSON]:
        with self._lock:
            return [f for f in self.received if frame_type is None or f.get("type") == frame_type]

    def wait_frames(self, frame_type: str, count: int = 1, timeout: float = 10) -> list[JSON]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.frames(frame_type)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {frame_type} frame(s), got {self.frames(frame_type)}")

    def send(self, message: JSON) -> None:
        self.call(self._broadcast(message))

    def snapshot(self) -> JSON:
        async def read() -> JSON:
            return {"panelId": "panel", "state": copy.deepcopy(self.state), "stateVersion": self.version}

        result: JSON = self.call(read())
        return result

    def change_silently(self, changes: JSON) -> None:
        """A committed change this client never hears about (a lost PATCH)."""

        async def apply() -> None:
            self.state.update(copy.deepcopy(changes))
            self.version += 1

        self.call(apply())

    def patch(self, changes: JSON) -> None:
        """Commit a change and broadcast it as a PATCH."""

        async def apply() -> None:
            new_state = {**self.state, **copy.deepcopy(changes)}
            await self.commit(new_state, recompute=False)

        self.call(apply())

    def drop(self) -> None:
        """Cut every connection without a closing handshake."""

        async def cut() -> None:
            for client in list(self._clients):
                client.transport.abort()

        self.call(cut())

    def close_all(self, code: int, reason: str = "") -> None:
        async def close() -> None:
            await asyncio.gather(*(c.close(code, reason) for c in list(self._clients)))

        self.call(close())

    def send_away(self, retry_after_ms: int) -> None:
        """What a draining server does: a RECONNECT hint, then close 1012, on every socket."""

        async def away() -> None:
            self.sent_away_at = time.monotonic()
            await asyncio.gather(*(self._send_away(c, retry_after_ms) for c in list(self._clients)))

        self.call(away())

    @staticmethod
    async def _send_away(ws: ServerConnection, retry_after_ms: int) -> None:
        await ws.send(json.dumps({"type": "RECONNECT", "reason": "draining", "retryAfterMs": retry_after_ms}))
        await ws.close(1012, "")

    def hold(self, name: str) -> None:
        async def make() -> None:
            self._gates[name] = asyncio.Event()

        self.call(make())

    def release(self, name: str) -> None:
        async def open_gate() -> None:
            self._gates.setdefault(name, asyncio.Event()).set()

        self.call(open_gate())

    def hold_connected(self) -> None:
        async def make() -> None:
            self._connected_gate = asyncio.Event()

        self.call(make())

    def release_connected(self) -> None:
        async def open_gate() -> None:
            if self._connected_gate:
                self._connected_gate.set()

        self.call(open_gate())

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    # protocol -----------------------------------------------------------------

    def recompute(self, state: JSON) -> None:
        if self.kind.computed:
            self.kind.computed(state)

    async def wait_gate(self, name: str) -> None:
        gate = self._gates.get(name)
        if gate:
            await asyncio.wait_for(gate.wait(), timeout=30)

    async def _broadcast(self, message: JSON) -> None:
        text = json.dumps(message)
        for client in list(self._clients):
            try:
                await client.send(text)
            except ConnectionClosed:
                pass

    async def commit(self, new_state: JSON, recompute: bool = True) -> None:
        if recompute:
            self.recompute(new_state)
        mutations = [
            {"key": key, "value": value, "operation": "set"}
            for key, value in new_state.items()
            if key not in self.state or self.state[key] != value
        ]
        mutations += [{"key": key, "operation": "delete"} for key in self.state if key not in new_state]
        if not mutations:
            return
        self.state = copy.deepcopy(new_state)
        self.version += 1
        await self._broadcast({
            "type": "PATCH", "mutations": mutations, "stateVersion": self.version, "timestamp": time.time(),
        })

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections_total += 1
        self.connection_times.append(time.monotonic())
        if self.close_code_on_connect:
            await ws.close(self.close_code_on_connect, "refused by the test")
            return
        if self.send_away_on_connect:
            self.send_away_on_connect -= 1
            await self._send_away(ws, 100)
            return
        if self._connected_gate:
            await asyncio.wait_for(self._connected_gate.wait(), timeout=30)
        self._clients.add(ws)
        try:
            await ws.send(json.dumps({
                "type": "CONNECTED", "panelId": "panel", "state": self.state, "stateVersion": self.version,
            }))
            async for raw in ws:
                message = json.loads(raw)
                with self._lock:
                    self.received.append(message)
                await self._dispatch(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)

    async def _dispatch(self, ws: ServerConnection, message: JSON) -> None:
        kind = message.get("type")
        if kind == "TRIGGER":
            await self._trigger(ws, message)
        elif kind == "SET":
            await self._set(ws, message)
        elif kind == "PING" and not self.silent:
            await ws.send(json.dumps({"type": "PONG"}))

    async def _set(self, ws: ServerConnection, message: JSON) -> None:
        key, value = message.get("key"), message.get("value")
        current = self.state.get(key)
        if key not in self.state or type(current) is not type(value):
            await ws.send(json.dumps({
                "type": "ERROR", "code": "INVALID_MESSAGE", "message": f"cannot set {key}",
                "requestId": message.get("requestId"),
            }))
            return
        await self.commit({**self.state, key: value})

    async def _trigger(self, ws: ServerConnection, message: JSON) -> None:
        request_id = message.get("requestId")
        tool = self.kind.tools.get(str(message.get("tool")))
        if self.error_frame_next is not None:
            frame, self.error_frame_next = self.error_frame_next, None
            await ws.send(json.dumps({"type": "ERROR", "requestId": request_id, **frame}))
            return
        if tool is None:
            await ws.send(json.dumps({
                "type": "ERROR", "code": "TOOL_NOT_FOUND", "message": "no such tool", "requestId": request_id,
            }))
            return
        run = ToolRun(server=self, state=copy.deepcopy(self.state))
        status, error, value = "success", None, None
        try:
            await self.wait_gate(str(message.get("tool")))
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise ToolError(error)
            value = await tool(run, message.get("args") or {})
            await self.commit(run.state)
        except ToolError as exc:
            status, error = "error", str(exc)
        # As the real server does for events not declared broadcast: the requester's alone.
        for name, payload in run.events:
            await ws.send(json.dumps({"type": "EVENT", "name": name, "payload": payload}))
        result: JSON = {
            "type": "RESULT", "requestId": request_id, "status": status, "mutations": [],
            "events": [], "viewCommands": [], "returnValue": value,
        }
        if error is not None:
            result["error"] = error
        await ws.send(json.dumps(result))


# ----------------------------------------------------------------- HTTP site


def json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element (the escaping Django's json_script does)."""
    text = json.dumps(value)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


HARNESS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Nexus test harness</title>
<link rel="stylesheet" href="/static/workspaces/panel.css">
</head>
<body class="nx-page">
<div id="nexus-panel-root"></div>
<script type="application/json" id="nexus-panel-data">{data}</script>
<script type="module" src="/static/workspaces/panel.js"></script>
</body>
</html>
"""

CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass
class HarnessPage:
    html: bytes
    csp: str | None
    state: Callable[[], JSON] | None
    state_requests: int = 0


class HarnessSite:
    """Serves /static/workspaces/*, /harness/<name> pages and /state/<name> on 127.0.0.1."""

    def __init__(self, static_dir: Path) -> None:
        self.static_dir = static_dir
        self.pages: dict[str, HarnessPage] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="harness-http", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> HarnessSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def add_page(self, name: str, config: JSON, *, csp: str | None = None,
                 state: Callable[[], JSON] | None = None) -> str:
        html = HARNESS_PAGE.format(title=escape(name), data=json_for_script(config))
        self.pages[name] = HarnessPage(html=html.encode(), csp=csp, state=state)
        return f"{self.origin}/harness/{name}"

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.startswith("/static/workspaces/"):
            target = (self.static_dir / path[len("/static/workspaces/"):]).resolve()
            inside = target.is_relative_to(self.static_dir.resolve())
            if inside and target.suffix in CONTENT_TYPES and target.is_file():
                self.send(handler, HTTPStatus.OK, target.read_bytes(), CONTENT_TYPES[target.suffix])
                return
        elif path.startswith("/harness/") and path[9:] in self.pages:
            page = self.pages[path[9:]]
            extra = {"Content-Security-Policy": page.csp} if page.csp else {}
            self.send(handler, HTTPStatus.OK, page.html, "text/html; charset=utf-8", extra)
            return
        elif path.startswith("/state/") and path[7:] in self.pages and self.pages[path[7:]].state:
            page = self.pages[path[7:]]
            page.state_requests += 1
            assert page.state is not None
            self.send(handler, HTTPStatus.OK, json.dumps(page.state()).encode(), "application/json")
            return
        self.send(handler, HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes, content_type: str,
             extra: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
