"""The rate of frames one WebSocket may send: a token bucket per socket.

``rate`` frames per second are sustained and up to ``burst`` may come at once. A frame
beyond that is refused (the consumer answers with an ERROR frame); a socket that keeps
sending while refused, ``burst`` refusals before its bucket is half full again, is one to close.
"""

from __future__ import annotations

import time


class FrameRate:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.refused = 0

    def take(self) -> bool:
        """Spend one frame; False when the socket is over its rate."""
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            if self.tokens >= self.burst / 2:
                self.refused = 0
            return True
        self.refused += 1
        return False

    @property
    def persistent(self) -> bool:
        """The socket went on sending through a whole burst of refusals."""
        return self.refused > self.burst
