"""What the faces count into the product's metrics (``runtime.metrics``): errors answered, open sockets."""

from __future__ import annotations

from runtime import metrics


def count_error(code: str) -> None:
    """One error answered to a client, by its error code."""
    metrics.ERRORS_TOTAL.labels(code).inc()


def count_connections(delta: int) -> None:
    """WebSocket connections opened (+1) or closed (-1)."""
    metrics.WS_CONNECTIONS.inc(delta)
