"""A real HTTP server on 127.0.0.1 for the extension tests, and helpers around it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from prometheus_client import REGISTRY

from runtime.extensions.http import HttpExtension
from runtime.extensions.netguard import DestinationLookupFailed, system_resolver

MAX_SLEEP_S = 5.0


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on purpose; the broken pipe is expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, head: bool = False) -> None:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        record = {
            "method": self.command,
            "path": parsed.path,
            "query": parse_qs(parsed.query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with self.server.lock:
            self.server.requests.append(record)
        route = parsed.path.rstrip("/").split("/")
        name = route[1] if len(route) > 1 else ""
        if name == "api":  # /api/... mirrors the echo route, for baseURL tests
            name = "echo"
        handler = getattr(self, f"route_{name}", None)
        if handler is None:
            self._send(404, "text/plain", b"no such route")
            return
        handler(route, query, record, head)

    def _send(
        self,
        status: int,
        content_type: str,
        payload: bytes,
        head: bool = False,
        extra: dict[str, str] | None = None,
        with_length: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if with_length:
            self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def _json(self, status: int, value: Any, head: bool = False) -> None:
        self._send(status, "application/json", json.dumps(value).encode(), head)

    def route_json(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._json(200, {"ok": True, "items": [1, 2, 3]}, head)

    def route_text(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._send(200, "text/plain; charset=utf-8", "hello, wörld".encode(), head)

    def route_latin1(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._send(200, "text/plain; charset=iso-8859-1", "café".encode("latin-1"), head)

    def route_badjson(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._send(200, "application/json", b"{not json", head)

    def route_problem(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._send(422, "application/problem+json", b'{"title": "bad"}', head)

    def route_status(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        code = int(route[2])
        self._json(code, {"code": code}, head)

    def route_slow(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        time.sleep(min(float(query.get("ms", "1000")) / 1000, MAX_SLEEP_S))
        self._send(200, "text/plain", b"done", head)

    def route_big(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        size = int(query.get("bytes", "0"))
        self._send(200, "text/plain", b"x" * size, head, with_length=query.get("length", "1") == "1")

    def route_redirect(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        code = int(query.get("code", "302"))
        self._send(code, "text/plain", b"moved", head, extra={"Location": query["to"]})

    def route_loop(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._send(302, "text/plain", b"again", head, extra={"Location": "/loop"})

    def route_echo(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        self._json(200, record, head)

    def route_inflight(self, route: list[str], query: dict[str, str], record: dict[str, Any], head: bool) -> None:
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            time.sleep(0.2)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1
        self._json(200, {"ok": True}, head)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    httpd = LocalServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def lookups() -> Iterator[list[str]]:
    """Host names the extensions resolved; only `localhost` may reach the system resolver."""
    seen: list[str] = []
    yield seen
    strays = [host for host in seen if host != "localhost"]
    assert not strays, f"tests must not resolve public names: {strays}"


def local_resolver(seen: list[str], fake: dict[str, Sequence[str]] | None = None) -> Callable[..., Any]:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if fake is not None and host in fake:
            answer = fake[host]
            if not answer:
                raise DestinationLookupFailed(host, "no such name (fake)")
            return answer
        seen.append(host)
        if host != "localhost":
            raise DestinationLookupFailed(host, "blocked by the test resolver")
        return await system_resolver(host, port)

    return resolve


@pytest.fixture
def make_http(lookups: list[str]) -> Callable[..., HttpExtension]:
    """HttpExtension with 127.0.0.1 allowed and a resolver that never leaves the machine."""

    def build(fake_dns: dict[str, Sequence[str]] | None = None, **kwargs: Any) -> HttpExtension:
        kwargs.setdefault("allowed_private_hosts", "127.0.0.1")
        kwargs.setdefault("resolver", local_resolver(lookups, fake_dns))
        return HttpExtension(**kwargs)

    return build


@pytest.fixture
def ext_calls() -> Callable[[str, str, str], float]:
    """Current value of nexus_ext_calls_total for one label set."""

    def value(extension: str, method: str, status: str) -> float:
        labels = {"extension": extension, "method": method, "status": status}
        return REGISTRY.get_sample_value("nexus_ext_calls_total", labels) or 0.0

    return value
