"""`nexus.http`: outbound HTTP for handlers, on httpx's AsyncClient.

Settings read by `HttpExtension.from_settings` (defaults in brackets):

- HTTP_MAX_CONCURRENT [10]: calls in flight at once per event loop (one loop per server
  process); further calls wait for a free slot.
- HTTP_TIMEOUT [30000]: milliseconds one call may take once it has a slot (connect,
  redirects and body included); a handler's `timeout` option can only shorten it.
- HTTP_ALLOWED_DOMAINS [""]: comma separated allow-list of host names, `*.domain` for any
  subdomain of domain (not the domain itself), `*` or empty for any host.
- HTTP_ALLOWED_PRIVATE_HOSTS [""]: comma separated exact host names or IP literals that may
  resolve to loopback, private, link-local and other non-public addresses. Listing a host
  here also admits it past HTTP_ALLOWED_DOMAINS. Cloud metadata addresses stay refused.
- HTTP_MAX_BODY_BYTES [1048576]: cap on a response body (after decompression) and on a
  request body.
- HTTP_MAX_REDIRECTS [5]: redirects followed per call; each target is checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import math
import re
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from .netguard import (
    DestinationLookupFailed,
    DestinationPolicy,
    DestinationRefused,
    GuardedNetworkBackend,
    Resolver,
    parse_domain_patterns,
    parse_exact_hosts,
    system_resolver,
)
from .registry import Extension, ExtensionDenied, ExtensionError

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = 10
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_REDIRECTS = 5

_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the client owns: framing, connection management and the product identification.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "user-agent",
    }
)
# idempotencyKey: sent as the Idempotency-Key header, and it makes the call safe to repeat
# when the handler's process dies while the call is in flight (docs/suspensions.md).
_COMMON_OPTIONS = frozenset({"headers", "params", "timeout", "json", "body", "idempotencyKey"})
_REQUEST_OPTIONS = _COMMON_OPTIONS | {"url", "method"}


def _product_version() -> str:
    try:
        return importlib.metadata.version("nexus")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"Nexus/{_product_version()}"


@dataclass
class _Call:
    """One handler call, validated and ready to become an httpx request."""

    method: str
    url: str
    timeout_ms: int
    headers: dict[str, str] = field(default_factory=dict)
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None


class HttpExtension(Extension):
    name = "nexus.http"
    methods = frozenset({"get", "post", "put", "patch", "delete", "request"})

    def __init__(
        self,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        allowed_domains: str | Iterable[str] | None = None,
        allowed_private_hosts: str | Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        resolver: Resolver | None = None,
    ) -> None:
        self.max_concurrent = _positive_int("max_concurrent", max_concurrent, 1)
        self.timeout_ms = _positive_int("timeout_ms", timeout_ms, 1)
        self.max_body_bytes = _positive_int("max_body_bytes", max_body_bytes, 1)
        self.max_redirects = _positive_int("max_redirects", max_redirects, 0)
        self.policy = DestinationPolicy(
            allowed_domains=parse_domain_patterns(allowed_domains, "allowed_domains"),
            private_hosts=parse_exact_hosts(allowed_private_hosts, "allowed_private_hosts"),
            resolver=resolver or system_resolver,
        )
        self._home: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._slots_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HttpExtension:
        def number(key: str, default: int, minimum: int) -> int:
            return _positive_int(key, settings.get(key, default), minimum)

        def host_list(key: str) -> Any:
            value = settings.get(key)
            if value is not None and not isinstance(value, str | list | tuple | set | frozenset):
                raise ValueError(f"{key} must be a comma separated string or a list, got {value!r}")
            return value

        return cls(
            max_concurrent=number("HTTP_MAX_CONCURRENT", DEFAULT_MAX_CONCURRENT, 1),
            timeout_ms=number("HTTP_TIMEOUT", DEFAULT_TIMEOUT_MS, 1),
            allowed_domains=parse_domain_patterns(host_list("HTTP_ALLOWED_DOMAINS"), "HTTP_ALLOWED_DOMAINS"),
            allowed_private_hosts=parse_exact_hosts(
                host_list("HTTP_ALLOWED_PRIVATE_HOSTS"), "HTTP_ALLOWED_PRIVATE_HOSTS"
            ),
            max_body_bytes=number("HTTP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1),
            max_redirects=number("HTTP_MAX_REDIRECTS", DEFAULT_MAX_REDIRECTS, 0),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pooled client on the running loop; calls from other loops use their own."""
        if self._home is None:
            self._home = (asyncio.get_running_loop(), self._new_client())

    async def stop(self) -> None:
        home, self._home = self._home, None
        if home is None:
            return
        loop, client = home
        if loop is asyncio.get_running_loop():
            await client.aclose()
        elif loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(client.aclose(), loop))

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=_GuardedTransport(self.policy, self.max_concurrent),
            headers={"User-Agent": USER_AGENT},
            timeout=self.timeout_ms / 1000,
            follow_redirects=False,
            trust_env=False,
        )

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        home = self._home
        if home is not None and home[0] is asyncio.get_running_loop():
            yield home[1]
            return
        async with self._new_client() as client:
            yield client

    def _loop_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._slots_lock:
            slots = self._slots.get(loop)
            if slots is None:
                slots = self._slots[loop] = asyncio.Semaphore(self.max_concurrent)
        return slots

    # -- calls -----------------------------------------------------------------------------

    async def call(self, method: str, args: list[Any], panel_config: dict[str, Any]) -> Any:
        call = self._parse_call(method, args)
        url = _resolve_url(call.url, panel_config.get("baseURL"))
        async with self._loop_slots(), self._client() as client:
            try:
                async with asyncio.timeout(call.timeout_ms / 1000):
                    return await self._exchange(client, call, url)
            except (TimeoutError, httpx.TimeoutException):
                raise ExtensionError(f"HTTP request timed out after {call.timeout_ms} ms") from None

    async def _exchange(self, client: httpx.AsyncClient, call: _Call, url: httpx.URL) -> dict[str, Any]:
        try:
            target = url.copy_merge_params(tuple(call.params)) if call.params else url
            request = client.build_request(
                call.method,
                target,
                headers=call.headers,
                content=call.content,
                timeout=call.timeout_ms / 1000,
            )
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise ExtensionError(f"Invalid HTTP request: {exc}") from None
        for hop in range(self.max_redirects + 1):
            response = await self._send(client, request, redirected=hop > 0)
            try:
                next_request = response.next_request
                if next_request is None:
                    return await self._read(response)
            finally:
                await response.aclose()
            request = next_request
        raise ExtensionError(f"HTTP request stopped after {self.max_redirects} redirects")

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request, *, redirected: bool) -> httpx.Response:
        what = "HTTP redirect to" if redirected else "HTTP request to"
        url = _check_scheme_and_host(request.url, what)
        try:
            return await client.send(request, stream=True)
        except DestinationRefused as exc:
            raise ExtensionDenied(f"{what} {exc.host} refused: {exc.reason}") from None
        except DestinationLookupFailed as exc:
            raise ExtensionError(f"{what} {exc.host} failed: the host name could not be resolved") from None
        except httpx.TimeoutException:
            raise
        except httpx.ConnectError as exc:
            raise ExtensionError(f"{what} {_display(url)} failed: could not connect ({exc})") from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise ExtensionError(f"{what} {_display(url)} failed: {detail}") from None

    async def _read(self, response: httpx.Response) -> dict[str, Any]:
        cap = self.max_body_bytes
        declared = response.headers.get("content-length", "")
        if response.request.method != "HEAD" and declared.isdigit() and int(declared) > cap:
            raise ExtensionError(f"Response body exceeds {cap} bytes")
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    raise ExtensionError(f"Response body exceeds {cap} bytes")
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise ExtensionError(f"HTTP response from {_display(response.url)} broke off: {exc}") from None
        return {
            "status": response.status_code,
            "headers": dict(response.headers.items()),
            "data": _decode_body(bytes(body), response),
        }

    # -- argument checks -------------------------------------------------------------------

    def _parse_call(self, method: str, args: list[Any]) -> _Call:
        if method in ("get", "delete"):
            url, options = _positional(method, args, ("url", "options"))
            return self._build_call(method, method.upper(), url, None, options, _COMMON_OPTIONS)
        if method in ("post", "put", "patch"):
            url, body, options = _positional(method, args, ("url", "body", "options"))
            return self._build_call(method, method.upper(), url, body, options, _COMMON_OPTIONS)
        if method == "request":
            (options,) = _positional(method, args, ("options",))
            if not isinstance(options, dict):
                raise ExtensionError("request(options): options must be an object with at least a url")
            verb = options.get("method") or "GET"
            if not isinstance(verb, str) or verb.upper() not in _HTTP_METHODS:
                allowed = ", ".join(sorted(_HTTP_METHODS))
                raise ExtensionError(f"request: method must be one of {allowed}, got {verb!r}")
            return self._build_call(method, verb.upper(), options.get("url"), None, options, _REQUEST_OPTIONS)
        raise ExtensionError(f"nexus.http has no method {method!r}")

    def _build_call(self, method: str, verb: str, url: Any, body: Any, options: Any, known: frozenset[str]) -> _Call:
        if not isinstance(url, str) or not url.strip():
            raise ExtensionError(f"{method}: url must be a non-empty string")
        options = _check_options(method, options, known)
        call = _Call(method=verb, url=url.strip(), timeout_ms=self._timeout(method, options.get("timeout")))
        call.headers = _check_headers(method, options.get("headers"))
        key = options.get("idempotencyKey")
        if key is not None:
            if not isinstance(key, str) or not key.strip() or len(key) > 255 or any(ch in key for ch in "\r\n\0"):
                raise ExtensionError(f"{method}: idempotencyKey must be a non-empty string of at most 255 characters")
            call.headers["Idempotency-Key"] = key.strip()
        call.params = _check_params(method, options.get("params"))
        content, content_type = _encode_body(method, body, options)
        if content is not None:
            if len(content) > self.max_body_bytes:
                raise ExtensionError(f"Request body exceeds {self.max_body_bytes} bytes")
            call.content = content
            if not any(name.lower() == "content-type" for name in call.headers):
                call.headers["Content-Type"] = content_type
        return call

    def _timeout(self, method: str, value: Any) -> int:
        if value is None:
            return self.timeout_ms
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value <= 0:
            raise ExtensionError(f"{method}: timeout must be a positive number of ms, got {value!r}")
        return min(math.ceil(value), self.timeout_ms)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose connections go through GuardedNetworkBackend.

    httpx has no public switch for httpcore's network backend, so the pool built by the
    parent is replaced by an equivalent one that has the guard plugged in.
    """

    def __init__(self, policy: DestinationPolicy, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(policy),
        )


def _positive_int(name: str, value: Any, minimum: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _positional(method: str, args: list[Any], names: tuple[str, ...]) -> list[Any]:
    trimmed = list(args)
    while trimmed and trimmed[-1] is None:
        trimmed.pop()
    if len(trimmed) > len(names):
        raise ExtensionError(f"{method}({', '.join(names)}) takes at most {len(names)} arguments, got {len(trimmed)}")
    return trimmed + [None] * (len(names) - len(trimmed))


def _check_options(method: str, options: Any, known: frozenset[str]) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ExtensionError(f"{method}: options must be an object")
    unknown = sorted(str(key) for key in options if key not in known)
    if unknown:
        raise ExtensionError(f"{method}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return options


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def _check_headers(method: str, headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ExtensionError(f"{method}: headers must be an object of names to strings")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ExtensionError(f"{method}: {name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS or name.lower().startswith("proxy-"):
            raise ExtensionError(f"{method}: header {name!r} is set by the host and cannot be given")
        text = _scalar_text(value)
        if text is None or any(ch in text for ch in "\r\n\0"):
            raise ExtensionError(f"{method}: header {name!r} must be a single-line string")
        checked[name] = text
    return checked


def _check_params(method: str, params: Any) -> list[tuple[str, str]]:
    if params is None:
        return []
    if not isinstance(params, dict):
        raise ExtensionError(f"{method}: params must be an object")
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            text = _scalar_text(item)
            if text is None:
                raise ExtensionError(f"{method}: param {key!r} must be a string, number, boolean or a list of them")
            pairs.append((str(key), text))
    return pairs


def _encode_body(method: str, body: Any, options: dict[str, Any]) -> tuple[bytes | None, str]:
    """Request content and its default content type, from a positional body or options."""
    sources = [
        (kind, value)
        for kind, value in (("argument", body), ("json", options.get("json")), ("body", options.get("body")))
        if value is not None
    ]
    if len(sources) > 1:
        raise ExtensionError(f"{method}: give the body once (as an argument, options.json or options.body)")
    if not sources:
        return None, ""
    kind, value = sources[0]
    if kind == "body" and not isinstance(value, str):
        raise ExtensionError(f"{method}: options.body must be a string; use options.json for other values")
    if isinstance(value, str) and kind != "json":
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ExtensionError(f"{method}: the body cannot be sent as JSON ({exc})") from None
    return encoded.encode("utf-8"), "application/json"


def _resolve_url(raw: str, base: Any) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise ExtensionError(f"Invalid URL {raw!r}: {exc}") from None
    if url.scheme:
        return _check_scheme_and_host(url, "HTTP request to")
    if base is None or base == "":
        raise ExtensionError(f"Relative URL {raw!r} needs a baseURL in the panel's extension config")
    base_url = _base_url(base)
    if url.host:
        return base_url.join(raw)
    return base_url.join(raw.lstrip("/"))


def _check_scheme_and_host(url: httpx.URL, what: str) -> httpx.URL:
    if url.scheme not in ("http", "https"):
        raise ExtensionDenied(f"{what} {_display(url)} refused: only http and https URLs are allowed")
    if not url.host:
        raise ExtensionError(f"{what} {_display(url)} failed: the URL has no host")
    return url


def _base_url(base: Any) -> httpx.URL:
    try:
        url = httpx.URL(base) if isinstance(base, str) else None
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ExtensionError(f"Invalid baseURL {base!r}: it must be an absolute http or https URL")
    path = url.path if url.path.endswith("/") else url.path + "/"
    return url.copy_with(path=path, query=None, fragment=None)


def _display(url: httpx.URL) -> str:
    """The URL without credentials, query or fragment, for error messages."""
    try:
        return str(url.copy_with(username=None, password=None, query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return url.host or "the URL"


def _decode_body(body: bytes, response: httpx.Response) -> Any:
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
