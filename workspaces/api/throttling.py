"""Request rates: DRF throttles for the REST API and for failed logins (token view and login page).

Every counter is a fixed window (one cache key per window, counted with ``incr``), so a check
costs one or two cache operations whatever the rate; DRF's own throttles keep the time of
every request in the window instead. The API rates count in the process's memory (the
``default`` cache: no network on the hot path); failed logins count in the ``throttle``
cache, which is Redis when ``REDIS_URL`` is set, so guesses spread over processes add up.
A cache that fails lets requests through, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from rest_framework import throttling
from rest_framework.request import Request
from rest_framework.settings import api_settings

logger = logging.getLogger("nexus.throttle")


def parse_rate(rate: str) -> tuple[int, int]:
    """``600/min`` -> (600, 60): DRF's rate format (a count per s, min, hour or day)."""
    count, period = rate.split("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]


@dataclass(frozen=True)
class Window:
    """A fixed-window counter of at most ``limit`` events per ``seconds``."""

    name: str
    limit: int
    seconds: int
    cache_alias: str = "default"

    @classmethod
    def of(cls, name: str, rate: str, cache_alias: str = "default") -> Window:
        limit, seconds = parse_rate(rate)
        return cls(name, limit, seconds, cache_alias)

    def _key(self, ident: str, now: float) -> str:
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"nexus:{self.name}:{digest}:{int(now // self.seconds)}"

    def _retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.seconds - now % self.seconds))

    def count(self, ident: str) -> int:
        """Add one event; the count in the current window including it (0 if the cache failed)."""
        now = time.time()
        cache, key = caches[self.cache_alias], self._key(ident, now)
        try:
            if cache.add(key, 1, timeout=self.seconds + 1):
                return 1
            return int(cache.incr(key))
        except ValueError:  # the key expired between add and incr
            return 1
        except Exception as exc:  # the cache is down: fail open
            logger.warning("throttle cache unavailable, not counting %s: %s", self.name, exc)
            return 0

    def current(self, ident: str) -> int:
        now = time.time()
        try:
            return int(caches[self.cache_alias].get(self._key(ident, now), 0))
        except Exception as exc:
            logger.warning("throttle cache unavailable, not checking %s: %s", self.name, exc)
            return 0

    def retry_after(self) -> int:
        return self._retry_after(time.time())


class WindowRateThrottle(throttling.SimpleRateThrottle):
    """DRF's rate throttle (same rates, same cache keys by scope), counted in a fixed window."""

    cache_alias = "default"

    def __init__(self) -> None:
        super().__init__()
        self.window = Window.of(f"api:{self.scope}", self.rate, self.cache_alias) if self.rate else None

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.window is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        return self.window.count(key) <= self.window.limit

    def wait(self) -> float | None:
        return float(self.window.retry_after()) if self.window is not None else None


class UserRateThrottle(WindowRateThrottle, throttling.UserRateThrottle):
    """API_THROTTLE_USER per authenticated user (per address for anonymous callers)."""


class AnonRateThrottle(WindowRateThrottle, throttling.AnonRateThrottle):
    """API_THROTTLE_ANON per client address, for requests without credentials."""


# ---------------------------------------------------------------- failed logins


class FailedLogins:
    """Failed logins per username and per client address; both are checked before a login."""

    def __init__(self) -> None:
        config = settings.NEXUS
        self.per_username = Window.of("login:username", config.LOGIN_THROTTLE_USERNAME, "throttle")
        self.per_address = Window.of("login:address", config.LOGIN_THROTTLE_ADDRESS, "throttle")

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait when either counter is full, else None."""
        for window, ident in ((self.per_username, _username_key(username)), (self.per_address, address)):
            if ident and window.current(ident) >= window.limit:
                logger.warning(
                    "login throttled (%s) for username %r from %s", window.name, username[:150], address,
                    extra={"throttle": window.name, "username": username[:150], "client": address},
                )
                return window.retry_after()
        return None

    def record_failure(self, username: str, address: str) -> None:
        logger.info("failed login for username %r from %s", username[:150], address,
                    extra={"username": username[:150], "client": address})
        if username:
            self.per_username.count(_username_key(username))
        self.per_address.count(address)


def _username_key(username: str) -> str:
    return username.strip().casefold()


def client_address(request: HttpRequest | Request) -> str:
    """The caller's address as DRF's throttles see it (NUM_PROXIES: THROTTLE_PROXY_COUNT)."""
    return str(throttling.BaseThrottle().get_ident(cast(Any, request)))


def login_name(data: Any) -> str:
    """The username (or email) a login attempt names, as text; '' when there is none."""
    if not hasattr(data, "get"):
        return ""
    for field in ("username", "email"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value[:256]
    return ""


class FailedLoginThrottle(throttling.BaseThrottle):
    """Refuses a login while its username or its client address has too many recent failures."""

    def __init__(self) -> None:
        self.failed_logins = FailedLogins()
        self.delay: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method != "POST":
            return True
        self.delay = self.failed_logins.retry_after(login_name(request.data), self.get_ident(request))
        return self.delay is None

    def wait(self) -> float | None:
        return float(self.delay) if self.delay is not None else None


def login_throttles() -> list[type[throttling.BaseThrottle]]:
    """The API's own rates plus the failed-login rule, for the views that take passwords."""
    api_rates = cast(list[type[throttling.BaseThrottle]], api_settings.DEFAULT_THROTTLE_CLASSES)
    return [*api_rates, FailedLoginThrottle]
