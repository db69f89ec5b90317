"""Where rate-limit counters live: the interface of the ``rate_limit_backend`` hook.

The gateway asks its backend once per check: ``take_token`` for the per-key, per-IP and
per-conversation limit (``RATE_LIMIT_PER_MINUTE``, a token bucket) and ``take_windows``
for the public-traffic limits (per visitor and per IP, per minute and per day, in fixed
windows). The default keeps the counters in process; a backend shared by several
processes (the ``ratelimit_redis`` plugin's) makes the limits hold for a whole cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class WindowCount:
    """One fixed-window counter to count a message in."""

    #: What is counted, e.g. ``visitor_minute:<visitor id>``.
    key: str
    #: The window's length; windows start at whole multiples of it since the Unix epoch
    #: (a day is a UTC day).
    seconds: int
    #: How many the window takes (above 0).
    limit: int


@runtime_checkable
class RateLimitBackend(Protocol):
    """Counters for the gateway's limits. Every method may be called concurrently."""

    async def take_token(self, key: str, per_minute: int) -> float | None:
        """Take one token from ``key``'s bucket (``per_minute`` tokens, refilled
        continuously, bursts up to the same): ``None`` when allowed, else the seconds
        until a token is back (nothing is taken then)."""
        ...

    async def take_windows(self, counts: Sequence[WindowCount]) -> tuple[int, float] | None:
        """Count one in every window, or in none when one of them is full: ``None`` when
        counted, else the position in ``counts`` of a full window and the seconds until
        it starts again."""
        ...

    def state(self) -> Mapping[str, Any]:
        """What ``GET /health`` shows under ``rate_limits`` (``backend`` and ``shared``
        at least). Never fails; cheap (no round trip)."""
        ...
