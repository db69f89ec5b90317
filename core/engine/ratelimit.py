"""Rate limiting: a token bucket per key.

Channels call ``gateway.check_rate`` with whatever identifies a caller (an API key, a
client IP, a visitor) and get :class:`~core.contract.errors.RateLimited` (HTTP 429 with
``Retry-After``, see :mod:`core.web.errors`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

from core.contract.errors import RateLimited


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
