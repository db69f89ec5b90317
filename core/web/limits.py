"""Cost protection for public keys: messages per visitor and per client IP, per minute
and per day, in fixed windows (a day is a UTC day), counted in ``/metrics``.

The counters live in the gateway's rate-limit backend (the ``rate_limit_backend`` hook):
by default in process, so each gateway process counts its own traffic; a shared backend
(the ``ratelimit_redis`` plugin) makes the limits hold for every process together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from core.contract.ratelimit import RateLimitBackend, WindowCount
from core.engine.ratelimit import InProcessRateLimits
from core.web.errors import ApiError


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # "visitor_minute"...
    seconds: int
    limit: int
    what: str  # "a minute", "a day"


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
        backend: RateLimitBackend | None = None,
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
        self._backend: RateLimitBackend = backend or InProcessRateLimits()
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

    def use(self, backend: RateLimitBackend) -> None:
        """Count in ``backend`` from now on (the gateway's, set at start-up)."""
        self._backend = backend

    async def check_message(self, visitor: str, ip: str, text: str) -> None:
        """Count one public message; 413 ``message_too_long`` or 429 ``rate_limited``
        (with ``Retry-After`` and which limit) when it may not be sent."""
        if len(text) > self.max_message_chars:
            self.refused.labels("too_long").inc()
            raise ApiError(
                413,
                "message_too_long",
                f"a message from a web page may have at most {self.max_message_chars} characters",
            )
        windows = [(w, visitor) for w in self._visitor if w.limit > 0]
        windows += [(w, ip) for w in self._ip if w.limit > 0]
        counts = [WindowCount(f"{w.name}:{key}", w.seconds, w.limit) for w, key in windows]
        full = await self._backend.take_windows(counts) if counts else None
        if full is not None:
            position, wait = full
            window = windows[position][0]
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
