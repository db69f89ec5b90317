"""Rate limiting in process: a token bucket per key and fixed windows, behind the
:class:`~core.contract.ratelimit.RateLimitBackend` interface (the default of the
``rate_limit_backend`` hook).

Channels call ``await gateway.check_rate(...)`` with whatever identifies a caller (an API
key, a client IP, a visitor) and get :class:`~core.contract.errors.RateLimited` (HTTP 429
with ``Retry-After``, see :mod:`core.web.errors`). Each process counts its own traffic.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.contract.errors import RateLimited
from core.contract.ratelimit import RateLimitBackend, WindowCount


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
        """Raise :class:`RateLimited` (whole seconds to wait) when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimited(what, self.per_minute, max(1, math.ceil(wait)))

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


class FixedWindows:
    """Counts per window key; refuses when a count would pass its limit. Memory is
    bounded: past ``max_keys`` counters, those of past days go, then the oldest."""

    def __init__(self, max_keys: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys
        self._clock = clock

    def take(self, counts: Sequence[WindowCount]) -> tuple[int, float] | None:
        """Count one in each window, or none at all when one is full: then its position
        in ``counts`` and the seconds until it resets."""
        now = self._clock()
        current = []
        for position, window in enumerate(counts):
            slot = int(now // window.seconds)
            start, count = self._counts.get(window.key, (slot, 0))
            count = count if start == slot else 0
            if count >= window.limit:
                return position, (slot + 1) * window.seconds - now
            current.append((window.key, slot, count))
        for key, slot, count in current:
            self._counts[key] = (slot, count + 1)
        if len(self._counts) > self._max_keys:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        stale = [key for key, (slot, _) in self._counts.items() if slot < int(now // 86400)]
        for key in stale:
            del self._counts[key]
        excess = len(self._counts) - int(self._max_keys * 0.9)
        for key in list(itertools.islice(self._counts, max(excess, 0))):
            del self._counts[key]


class InProcessRateLimits:
    """The default :class:`~core.contract.ratelimit.RateLimitBackend`: this process's own
    counters (behind several processes each one counts its own traffic)."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._buckets: dict[int, RateLimiter] = {}
        self._windows = FixedWindows(clock=wall)

    async def take_token(self, key: str, per_minute: int) -> float | None:
        limiter = self._buckets.get(per_minute)
        if limiter is None:
            limiter = self._buckets[per_minute] = RateLimiter(per_minute, clock=self._monotonic)
        return limiter.retry_after(key)

    async def take_windows(self, counts: Sequence[WindowCount]) -> tuple[int, float] | None:
        return self._windows.take(counts)

    def state(self) -> Mapping[str, Any]:
        return {"backend": "in_process", "shared": False}


class GatewayLimits:
    """The gateway's rate limits: counted by ``backend``, in process until a plugin's
    ``rate_limit_backend`` replaces it at start-up. Is a backend itself (delegating), so
    the public-traffic limits hold this object and follow the switch."""

    def __init__(self) -> None:
        self.backend: RateLimitBackend = InProcessRateLimits()

    async def check(self, key: str, per_minute: int, what: str = "requests") -> None:
        """Raise :class:`RateLimited` (whole seconds to wait) when ``key`` is over
        ``per_minute`` (0: no limit)."""
        if per_minute:
            wait = await self.backend.take_token(key, per_minute)
            if wait is not None:
                raise RateLimited(what, per_minute, max(1, math.ceil(wait)))

    async def take_token(self, key: str, per_minute: int) -> float | None:
        return await self.backend.take_token(key, per_minute)

    async def take_windows(self, counts: Sequence[WindowCount]) -> tuple[int, float] | None:
        return await self.backend.take_windows(counts)

    def state(self) -> Mapping[str, Any]:
        return self.backend.state()
