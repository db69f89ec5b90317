"""The Redis client: one pool per gateway, every wait bounded by ``REDIS_TIMEOUT_MS``."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def open_client(url: str, timeout_s: float) -> Redis:
    """A client for ``url`` that never retries by itself: a check that fails is counted
    locally at once (redis-py's default retries with backoff would hold the request)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )
