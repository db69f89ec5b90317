"""Rate limits shared by every node, in Redis.

Enable it next to the others (``PLUGINS=http_api,talkme,postgres,agent_openai,
ratelimit_redis``) and set ``REDIS_URL``: the per-key, per-IP and per-conversation limit
(``RATE_LIMIT_PER_MINUTE``) and the public-traffic limits per visitor and per IP count
every node's traffic together (one atomic script per check, on the Redis server's clock).
With Redis away, each node counts its own traffic until Redis answers again (see
:mod:`plugins.ratelimit_redis.limiter`); ``/health`` shows which under ``rate_limits``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from core import Gateway, PluginError, hookimpl
from plugins.ratelimit_redis.settings import RedisSettings

PLUGIN_NAME = "ratelimit_redis"

__all__ = ["RedisRateLimitPlugin", "RedisSettings"]


class RedisRateLimitPlugin:
    """Opens the Redis client at start-up and provides the shared rate-limit backend."""

    def __init__(self) -> None:
        self.limits: Any = None

    @hookimpl
    def settings_model(self) -> type[RedisSettings]:
        return RedisSettings

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        try:
            from plugins.ratelimit_redis.connect import open_client
            from plugins.ratelimit_redis.limiter import RedisRateLimits
        except ImportError as exc:
            raise PluginError(
                f"plugin {PLUGIN_NAME!r} needs redis-py: pip install 'eneca-bot[redis]' ({exc})"
            ) from exc

        settings = gateway.settings_for(RedisSettings)
        url = settings.url.get_secret_value()
        gateway.mask_secrets(url, urlsplit(url).password)
        try:
            client = open_client(url, settings.timeout_ms / 1000)
        except ValueError as exc:  # redis-py's word for a URL it cannot read
            raise PluginError(f"plugin {PLUGIN_NAME!r}: REDIS_URL is not a usable URL") from exc
        limits = RedisRateLimits(client, settings.key_prefix, settings.timeout_ms / 1000)
        if await limits.ping():
            logger.info("rate limits shared in Redis (keys {}*)", settings.key_prefix)
        self.limits = limits
        try:
            yield
        finally:
            self.limits = None
            await client.aclose()

    @hookimpl
    def rate_limit_backend(self) -> Any:
        return self.limits
