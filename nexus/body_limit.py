"""Request bodies over BODY_LIMIT are refused while they arrive, never buffered whole.

A body that declares its length is refused up front by ``BodyLimitMiddleware``; one sent
without a length (chunked transfer encoding) can only be counted as it streams. Two places
count it: the HTTP server (daphne writes a request's whole body to a temporary file and then
queues all of it in memory before the application runs, so the count has to happen in its
request object) and Django's ASGI handler (for any other ASGI server).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nexus.errors import error_body
from runtime.errors import ErrorCode

logger = logging.getLogger("nexus.request")
# How long a refused request's remaining bytes are read and dropped before the connection closes.
LINGER_S = 2.0


class BodyTooLarge(Exception):
    """The body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(refusal_message(limit))
        self.limit = limit


def refusal_message(limit: int, length: int | None = None) -> str:
    size = f" of {length} bytes" if length is not None else ""
    return f"Request body{size} exceeds the limit of {limit} bytes (BODY_LIMIT); send a smaller body"


def refusal_body(limit: int, length: int | None = None) -> bytes:
    return json.dumps(error_body(ErrorCode.PAYLOAD_TOO_LARGE, refusal_message(limit, length))).encode()


def count_refusal(path: str, received: int, limit: int) -> None:
    from runtime import metrics

    metrics.ERRORS_TOTAL.labels(ErrorCode.PAYLOAD_TOO_LARGE).inc()
    logger.warning(
        "refused a request body over BODY_LIMIT on %s after %d bytes", path, received,
        extra={"path": path, "status": 413, "received_bytes": received, "limit": limit},
    )


def limit_request_bodies(factory: Any, limit: int) -> Any:
    """Make daphne's HTTP factory build requests that stop reading a body at ``limit`` bytes."""
    request_class = _limited_request_class(limit)
    build = factory.buildProtocol

    def build_protocol(addr: Any) -> Any:
        protocol = build(addr)
        protocol.requestFactory = request_class
        return protocol

    factory.buildProtocol = build_protocol
    return factory


def _abort(transport: Any) -> None:
    if transport.connected:
        transport.abortConnection()


def _limited_request_class(limit: int) -> type:
    from daphne.http_protocol import WebRequest
    from twisted.internet import reactor as twisted_reactor

    reactor: Any = twisted_reactor

    class LimitedWebRequest(WebRequest):  # type: ignore[misc]
        """daphne's request, answering 413 and closing as soon as the body passes the limit."""

        received = 0
        refused = False

        def gotLength(self, length: int | None) -> None:
            if length is not None and length > limit:
                self._refuse(length)
                return
            super().gotLength(length)

        def handleContentChunk(self, data: bytes) -> None:
            if self.refused:
                return
            self.received += len(data)
            if self.received > limit:
                self._refuse(None)
                return
            super().handleContentChunk(data)

        def process(self) -> Any:
            if self.refused:
                return None
            return super().process()

        def _refuse(self, length: int | None) -> None:
            self.refused = True
            # The request line is the channel's until the whole body has arrived.
            path = getattr(self.channel, "_path", b"").decode("latin-1", "replace").split("?", 1)[0]
            count_refusal(path[:200], max(self.received, length or 0), limit)
            body = refusal_body(limit, length)
            head = (
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            )
            transport = self.channel.transport
            transport.write(head + body)
            # Closing with unread data would reset the connection and lose the answer on the
            # way; so the write side closes and what still arrives is dropped, for a moment.
            transport.loseWriteConnection()
            reactor.callLater(LINGER_S, _abort, transport)

    return LimitedWebRequest
