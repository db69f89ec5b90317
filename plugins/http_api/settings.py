"""Settings of the HTTP API channel (env names without a prefix, TOML section ``http_api``).

Keys, their header, public origins (CORS) and the body-size limit are core settings
(``API_KEYS``, ``ADMIN_KEYS``, ``PUBLIC_KEYS``, ``PUBLIC_ORIGINS``, ``API_KEY_HEADER``,
``MAX_BODY_BYTES``): the admin endpoints of other channels use them too.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core import PluginSettings


class HttpApiSettings(PluginSettings):
    """``MAX_MESSAGE_CHARS``, ``DEBUG_ENDPOINT``, ``SERVE_EXAMPLES``..."""

    section: ClassVar[str] = "http_api"
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_prefix="")

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
