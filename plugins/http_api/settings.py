"""Settings of the HTTP API channel (env names without a prefix, TOML section ``http_api``).

API keys, their header and the body-size limit are core settings (``API_KEYS``,
``API_KEY_HEADER``, ``MAX_BODY_BYTES``): the admin endpoints of other channels use them too.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from core import CommaList, CoreSettings, PluginSettings, split_commas


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HttpApiSettings(PluginSettings):
    """``CORS_ORIGINS``, ``MAX_MESSAGE_CHARS``, ``DEBUG_ENDPOINT``, ``SERVE_EXAMPLES``..."""

    section: ClassVar[str] = "http_api"
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_prefix="")

    #: Browser origins allowed to call the API (``https://app.example.com``); ``*`` = any.
    cors_origins: CommaList = Field(default_factory=list)
    #: Longest accepted ``message`` (characters); longer ones get 413.
    max_message_chars: int = Field(16_000, ge=1)
    #: Register ``POST /api/debug`` (echoes requests; needs an API key).
    debug_endpoint: bool = False
    #: Serve ``examples/vanilla-js/index.html`` at ``/examples/chat``.
    serve_examples: bool = False
    #: Seconds between SSE comment pings while a reply streams.
    stream_ping_s: float = Field(15.0, gt=0)
    #: How long a finished reply is kept for a retry with the same ``Idempotency-Key``.
    idempotency_ttl_s: float = Field(3600.0, gt=0)
    #: Most idempotency keys remembered at once (oldest dropped first).
    idempotency_max_keys: int = Field(10_000, ge=1)

    #: Refuse to start when ``HOST`` is not a loopback address and no ``API_KEYS`` are set
    #: (the chat endpoints would be open to anyone who can reach the port).
    require_api_key: bool = False

    def review(self, core: CoreSettings) -> list[str]:
        if core.api_key_values() or is_loopback(core.host):
            return []
        if self.require_api_key:
            raise ValueError(
                f"REQUIRE_API_KEY is on, HOST is {core.host} (not loopback) and API_KEYS is "
                "empty: the HTTP API will not start open to the network"
            )
        return [
            f"API_KEYS is not set and the HTTP API listens on {core.host} (not loopback): "
            "anyone who can reach the port can chat (and spend the model's bill); set API_KEYS "
            "(REQUIRE_API_KEY=true enforces it)"
        ]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("cors_origins")
    @classmethod
    def _no_trailing_slash(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]
