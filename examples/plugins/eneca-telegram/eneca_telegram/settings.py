"""The Telegram channel's settings: section ``[telegram]`` in the TOML file, env prefix
``TELEGRAM_``."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from core import PluginSettings

DEFAULT_API_URL = "https://api.telegram.org"
#: What Telegram accepts as a webhook secret token.
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(PluginSettings):
    """How the bot talks to Telegram. Every field is ``TELEGRAM_<FIELD>`` in the env."""

    section: ClassVar[str] = "telegram"
    model_config = SettingsConfigDict(env_prefix="TELEGRAM_", extra="ignore", case_sensitive=False)

    #: The token @BotFather gave the bot (``123456:ABC...``). Required.
    bot_token: SecretStr
    #: Sent by Telegram in ``X-Telegram-Bot-Api-Secret-Token``; set-webhook registers it.
    webhook_secret: SecretStr | None = None
    #: Base URL of the Bot API; tests and local Bot API servers point it elsewhere.
    api_url: str = DEFAULT_API_URL
    #: Longer replies are sent as several messages (Telegram's limit is 4096).
    max_message_chars: int = Field(4096, ge=16, le=4096)
    #: How long the agent waits for the "typing" call before starting anyway.
    typing_wait_s: float = Field(0.5, ge=0, le=10)
    #: Timeout of one Bot API call.
    request_timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("bot_token")
    @classmethod
    def _token_given(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must be the token @BotFather gave the bot")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret_format(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str) or not _SECRET_CHARS.match(raw):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return raw

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value
