"""Rate-limit counters in Redis, shared by every node, counted per node while Redis is away.

One check is one ``EVALSHA`` of a script of :mod:`plugins.ratelimit_redis.scripts`. When
Redis does not answer within ``REDIS_TIMEOUT_MS`` (refused, timed out, any Redis error) the
check is counted in this node's own memory instead (the gateway's in-process limiter), so
a request is never refused or failed for Redis's sake and the limits still hold per node.
After a failure the node leaves Redis alone for :data:`RETRY_S` (at most one request a
second waits for a Redis that does not answer), then tries again; the first check that
gets through makes the limits shared again. A warning is logged at most once a minute
while Redis is away, and one line when it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import InProcessRateLimits, WindowCount
from plugins.ratelimit_redis.scripts import FIXED_WINDOWS, TOKEN_BUCKET

#: Seconds a node counts locally after a failed check before it asks Redis again.
RETRY_S = 1.0
#: Seconds between two warnings while Redis stays away.
WARN_EVERY_S = 60.0

_LOCAL = object()  # a check that Redis did not answer


class RedisRateLimits:
    """The ``rate_limit_backend`` of the ``ratelimit_redis`` plugin."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str,
        timeout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._clock = clock
        self._local = InProcessRateLimits()
        self._bucket = client.register_script(TOKEN_BUCKET)
        self._windows = client.register_script(FIXED_WINDOWS)
        #: Why the last check failed (``None`` while Redis answers).
        self.error: str | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._warned_at: float | None = None
        #: Checks counted locally since start-up because Redis did not answer.
        self.local_checks = 0

    async def take_token(self, key: str, per_minute: int) -> float | None:
        keys = [f"{self._prefix}bucket:{key}"]
        result = await self._run(self._bucket, keys, [per_minute])
        if result is _LOCAL:
            return await self._local.take_token(key, per_minute)
        return None if result is None else float(result)

    async def take_windows(self, counts: Sequence[WindowCount]) -> tuple[int, float] | None:
        keys = [f"{self._prefix}window:{count.key}" for count in counts]
        args: list[int] = []
        for count in counts:
            args += [count.seconds, count.limit]
        result = await self._run(self._windows, keys, args)
        if result is _LOCAL:
            return await self._local.take_windows(counts)
        if result is None:
            return None
        position, wait = result
        return int(position) - 1, float(wait)

    def state(self) -> Mapping[str, Any]:
        if self._down_since is None:
            return {"backend": "redis", "shared": True}
        return {
            "backend": "redis",
            "shared": False,
            "counting": "per node until Redis answers",
            "down_for_s": round(self._clock() - self._down_since, 1),
            "error": self.error,
            "local_checks": self.local_checks,
        }

    async def ping(self) -> bool:
        """Whether Redis answers now (start-up's first look); a failure counts as one."""
        result = await self._run(None, [], [])
        return result is not _LOCAL

    async def _run(self, script: Any, keys: list[str], args: Sequence[int]) -> Any:
        now = self._clock()
        if self._down_since is not None and now < self._retry_at:
            self.local_checks += 1
            return _LOCAL
        try:
            async with asyncio.timeout(self._timeout_s):
                if script is None:
                    return await self._client.ping()
                result = await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc, now)
            self.local_checks += 1
            return _LOCAL
        if self._down_since is not None:
            logger.info(
                "rate limits: Redis answers again after {:.0f}s; limits are shared again",
                now - self._down_since,
            )
            self._down_since = None
            self.error = None
        return result

    def _failed(self, exc: BaseException, now: float) -> None:
        self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._down_since is None:
            self._down_since = now
        self._retry_at = now + RETRY_S
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning(
                "rate limits: Redis does not answer ({}); each node counts its own traffic "
                "until it does (requests are not refused for it)",
                self.error,
            )
