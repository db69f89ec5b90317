"""Settings of the ratelimit_redis plugin: TOML section ``[redis]``, env ``REDIS_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from core import PluginSettings

#: URL schemes redis-py connects with.
SCHEMES = ("redis://", "rediss://", "unix://")


class RedisSettings(PluginSettings):
    """Where the shared rate-limit counters live. Every field is ``REDIS_<FIELD>``."""

    section: ClassVar[str] = "redis"
    model_config = SettingsConfigDict(env_prefix="REDIS_", extra="ignore", case_sensitive=False)

    #: The Redis server holding every node's rate-limit counters, e.g.
    #: ``redis://127.0.0.1:6379/0`` (``rediss://`` for TLS); may carry a password. Required.
    url: SecretStr
    #: Put before every key the limits write, so several deployments share one Redis.
    key_prefix: str = Field("eneca:rl:", min_length=1, max_length=100)
    #: Longest one check may wait for Redis (milliseconds); past it, or with Redis away,
    #: the check is counted in the node's own memory instead.
    timeout_ms: int = Field(250, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the value: the URL may carry a password.
        if not value.get_secret_value().startswith(SCHEMES):
            raise ValueError(f"must be a Redis URL starting with {', '.join(SCHEMES)}")
        return value
