"""Cost protection for public keys: messages per visitor and per client IP, per minute
and per day, in fixed windows (a day is a UTC day), counted in ``/metrics``.

Kept in process: each gateway process counts its own traffic (behind several processes the
limits apply per process). Memory is bounded: when more than ``max_keys`` counters exist,
those of past windows are dropped, then the oldest.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from core.web.errors import ApiError


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # "visitor_minute"...
    seconds: int
    limit: int
    what: str  # "a minute", "a day"


class FixedWindows:
    """Counts per (window, key); refuses when a count would pass its limit."""

    def __init__(self, max_keys: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        self._max_keys = max_keys
        self._clock = clock

    def take(self, windows: list[tuple[Window, str]]) -> tuple[Window, float] | None:
        """Count one for each ``(window, key)``, or none at all when one is full: then the
        full window and the seconds until it resets."""
        now = self._clock()
        current = []
        for window, key in windows:
            if window.limit <= 0:
                continue
            slot = int(now // window.seconds)
            start, count = self._counts.get((window.name, key), (slot, 0))
            count = count if start == slot else 0
            if count >= window.limit:
                return window, (slot + 1) * window.seconds - now
            current.append(((window.name, key), slot, count))
        for counter_key, slot, count in current:
            self._counts[counter_key] = (slot, count + 1)
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


class PublicLimits:
    """The public-traffic limits of one gateway, with their counters."""

    def __init__(
        self,
        *,
        visitor_per_minute: int,
        visitor_per_day: int,
        ip_per_minute: int,
        ip_per_day: int,
        max_message_chars: int,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_message_chars = max_message_chars
        self._visitor = [
            Window("visitor_minute", 60, visitor_per_minute, "a minute"),
            Window("visitor_day", 86400, visitor_per_day, "a day"),
        ]
        self._ip = [
            Window("ip_minute", 60, ip_per_minute, "a minute"),
            Window("ip_day", 86400, ip_per_day, "a day"),
        ]
        self._windows = FixedWindows(clock=clock)
        self.accepted = Counter(
            "eneca_public_messages",
            "Messages accepted from public keys (web pages)",
            registry=registry,
        )
        self.refused = Counter(
            "eneca_public_refusals",
            "Public-key requests refused, by reason (a limit, message too long, bad origin, "
            "bad visitor token)",
            ["reason"],
            registry=registry,
        )
        self.visitors = Counter(
            "eneca_visitors_issued", "Visitor tokens issued to new visitors", registry=registry
        )

    def check_message(self, visitor: str, ip: str, text: str) -> None:
        """Count one public message; 413 ``message_too_long`` or 429 ``rate_limited``
        (with ``Retry-After`` and which limit) when it may not be sent."""
        if len(text) > self.max_message_chars:
            self.refused.labels("too_long").inc()
            raise ApiError(
                413,
                "message_too_long",
                f"a message from a web page may have at most {self.max_message_chars} characters",
            )
        windows = [(w, visitor) for w in self._visitor] + [(w, ip) for w in self._ip]
        full = self._windows.take(windows)
        if full is not None:
            window, wait = full
            self.refused.labels(window.name).inc()
            seconds = max(1, math.ceil(wait))
            who = "this visitor" if window.name.startswith("visitor") else "this address"
            raise ApiError(
                429,
                "rate_limited",
                f"too many messages from {who}: at most {window.limit} {window.what}; "
                f"retry in {seconds}s",
                headers={"Retry-After": str(seconds)},
            )
        self.accepted.inc()
