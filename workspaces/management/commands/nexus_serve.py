"""Serve Nexus with daphne, and drain gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from nexus import lifecycle
from nexus.body_limit import limit_request_bodies
from workspaces.services import activity
from workspaces.services.publish import start_server_publisher
from workspaces.services.scheduler import start_scheduler
from workspaces.services.suspension_loop import start_suspension_loop

logger = logging.getLogger("nexus.server")
CLOSE_GOING_AWAY = 1001
HANDSHAKE_TIMEOUT_S = 20


# Close codes a consumer may send although autobahn's public close accepts only 1000 and 3000-4999:
# 1008 (policy violation) ends a socket that floods frames past its rate; 1012 (service restart)
# asks a client to reconnect, to another pod, when this one drains or the socket is old.
PROTOCOL_CLOSE_CODES = frozenset({1008, 1012})


def _websocket_protocol() -> type:
    from daphne.ws_protocol import WebSocketProtocol

    class NexusWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]
        def serverClose(self, code: int | None = None) -> None:
            if code in PROTOCOL_CLOSE_CODES:
                if self.state == self.STATE_OPEN:
                    self.sendCloseFrame(code=code, isReply=False)
                return
            super().serverClose(code)

    return NexusWebSocketProtocol


def build_server(application: Any, endpoints: list[str], grace_s: float, **options: Any) -> Any:
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import reactor as twisted_reactor

    reactor: Any = twisted_reactor

    class DrainingServer(Server):  # type: ignore[misc]
        """daphne's server, plus: stop listening, send sockets away (1012), finish running work, close the rest."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            announce = kwargs.pop("ready_callable", None)

            def ready() -> None:
                # Close refused frames (1009) with a closing handshake instead of dropping TCP,
                # so that clients can read the code.
                self.ws_factory.setProtocolOptions(failByDrop=False)
                loop = asyncio.get_event_loop()
                lifecycle.mark_server_loop(loop)
                start_server_publisher(loop)
                if settings.NEXUS.SCHEDULER_ENABLED:
                    start_scheduler(loop)
                start_suspension_loop(loop)
                if announce is not None:
                    announce()

            super().__init__(*args, ready_callable=ready, **kwargs)

        @property
        def ws_factory(self) -> Any:
            return self._ws_factory

        @ws_factory.setter
        def ws_factory(self, factory: Any) -> None:
            factory.protocol = _websocket_protocol()
            self._ws_factory = factory

        @property
        def http_factory(self) -> Any:
            return self._http_factory

        @http_factory.setter
        def http_factory(self, factory: Any) -> None:
            # daphne would buffer a chunked body whole before the application sees a byte of it.
            self._http_factory = limit_request_bodies(factory, settings.NEXUS.BODY_LIMIT)

        def listen_success(self, port: Any) -> None:
            self.ports = [*getattr(self, "ports", []), port]
            super().listen_success(port)

        def drain(self) -> None:
            if lifecycle.is_draining():
                return
            logger.info("shutting down: draining for up to %.0f s", grace_s)
            lifecycle.start_draining(lifecycle.drain_spread(grace_s))
            for port in getattr(self, "ports", []):
                port.stopListening()
            self._wait_for_work(time.monotonic() + grace_s)

        def _wait_for_work(self, deadline: float) -> None:
            try:
                self._close_when_idle(deadline)
            except Exception:
                logger.exception("draining failed; stopping now")
                self.stop()

        def _close_when_idle(self, deadline: float) -> None:
            busy = lifecycle.running_executions() or lifecycle.open_sockets()
            if busy and time.monotonic() < deadline:
                reactor.callLater(0.05, self._wait_for_work, deadline)
                return
            closed = 0
            for protocol in list(self.connections):
                if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                    # 1001 is reserved for endpoints going away, so autobahn's public close refuses it.
                    protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server shutting down")
                    closed += 1
            logger.info("closed %d WebSocket(s); stopping", closed)
            reactor.callLater(0.3 if closed else 0.05, self.stop)

    return DrainingServer(application=application, endpoints=endpoints, signal_handlers=False, **options)


class Command(BaseCommand):
    help = (
        "Serve HTTP and WebSockets with daphne on HOST:HTTP_PORT and HOST:WS_PORT, and /metrics on "
        "HOST:METRICS_PORT. It refuses to start when MAX_INSTANCES x MEMORY_LIMIT_MB cannot fit in the "
        "container's memory limit. "
        "It runs the panels' schedules too (SCHEDULER_ENABLED). "
        "On SIGTERM or SIGINT it stops accepting connections, asks every WebSocket to reconnect elsewhere "
        "(close 1012, spread over a few seconds, each after its running requests answered), lets running "
        "handlers finish for up to SHUTDOWN_GRACE_SECONDS, closes what is left with code 1001 and exits 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="address to bind (default: HOST)")
        parser.add_argument("--port", type=int, help="HTTP and WebSocket port (default: HTTP_PORT)")
        parser.add_argument("--ws-port", type=int, help="second WebSocket port (default: WS_PORT)")
        parser.add_argument("--single-port", action="store_true", help="no second WebSocket port")

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.NEXUS
        host = options["host"] or config.HOST
        ports = [options["port"] or config.HTTP_PORT]
        ws_port = options["ws_port"] or config.WS_PORT
        if not options["single_port"] and ws_port not in ports:
            ports.append(ws_port)
        if config.METRICS_PORT and config.METRICS_PORT not in ports:
            ports.append(config.METRICS_PORT)
        interface = host.replace(":", r"\:")
        endpoints = [f"tcp:port={port}:interface={interface}" for port in ports]

        from nexus.asgi import application
        from workspaces.services.sandbox import get_runtime

        runtime = get_runtime()  # warm the sandbox pool before the first request
        self._check_memory(runtime.config.max_instances, runtime.config.memory_limit_mb)
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall the event loop for tens of ms.
        gc.collect()
        gc.freeze()
        server = build_server(
            application,
            endpoints,
            float(config.SHUTDOWN_GRACE_SECONDS),
            websocket_max_message_size=config.BODY_LIMIT,
            websocket_max_frame_size=config.BODY_LIMIT,
            application_close_timeout=5,
            # autobahn drops a socket whose upgrade the application has not accepted within this
            # time; daphne's default of 5 s cut sockets that queued behind a burst of connects
            # on a busy process. daphne refuses an unaccepted connect after 20 s anyway.
            websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            ping_interval=20,
            ping_timeout=30,
            verbosity=0,
            ready_callable=lambda: logger.info("listening on %s ports %s", host, ports),
        )
        from twisted.internet import reactor

        def on_signal(signum: int, frame: Any) -> None:
            reactor.callFromThread(server.drain)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write(f"Nexus serving on http://{host}:{ports[0]}/ (ports {', '.join(map(str, ports))})")
        server.run()
        activity.flush()  # runs that finished while draining are in the activity log too
        self.stdout.write("Nexus stopped")

    def _check_memory(self, max_instances: int, memory_limit_mb: int) -> None:
        """Refuse to start when a full sandbox pool cannot fit in the container's memory limit."""
        from nexus.capacity import memory_budget
        from nexus.health import rss_bytes

        budget = memory_budget(max_instances, memory_limit_mb, rss_bytes(), settings.NEXUS.CGROUP_MEMORY_MAX)
        if not budget.fits:
            raise CommandError(budget.describe())
        logger.info("memory: %s", budget.describe())
