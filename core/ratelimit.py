"""Rate limiting (a token bucket per key) and the client address behind trusted proxies.

Channels call :meth:`RateLimiter.check` with whatever identifies a caller (an API key, a
client IP, a visitor) and get a 429 :class:`~core.errors.ApiError` with ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from core.errors import ApiError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    """``per_minute`` requests per key, refilled continuously, bursts up to the same.

    Memory is bounded: when more than ``max_keys`` keys are tracked, full buckets (idle
    callers) are dropped.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Take one token for ``key``; ``None`` when allowed, else seconds to wait."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            self._prune(now)
        return None

    def check(self, key: str, what: str = "requests") -> None:
        """Raise a 429 ``ApiError`` with ``Retry-After`` when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"too many {what}: at most {self.per_minute} a minute; retry in {seconds}s",
                headers={"Retry-After": str(seconds)},
            )

    def _prune(self, now: float) -> None:
        """Drop idle callers (full buckets); if that is not enough (many callers at once,
        say an attack from many addresses), drop the oldest keys down to 90% of the bound,
        so the next prune is far off and a new key costs O(1) on average."""
        full = [
            key
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self._rate >= self.per_minute
        ]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - int(self._max_keys * 0.9)
        if excess > 0:
            for key in list(itertools.islice(self._buckets, excess)):
                del self._buckets[key]


def parse_networks(values: Iterable[str]) -> list[Network]:
    """``["10.0.0.0/8", "127.0.0.1"]`` -> networks; raises ``ValueError`` naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return networks


def _in(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: web.Request, trusted_proxies: list[Network]) -> str:
    """The caller's address. ``X-Forwarded-For`` counts only when the direct peer is a
    trusted proxy; then the right-most address that is not a trusted proxy wins."""
    peer = request.remote or "unknown"
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer
