"""The TalkMe channel's settings: section ``[talkme]`` in the TOML file, env prefix ``TALKME_``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from core import CoreSettings, PluginSettings

DEFAULT_API_URL = "https://lcab.talk-me.ru/json/v1.0"


class TalkMeSettings(PluginSettings):
    """How the bot talks to TalkMe. Every field is ``TALKME_<FIELD>`` in the environment."""

    section: ClassVar[str] = "talkme"
    model_config = SettingsConfigDict(env_prefix="TALKME_", extra="ignore", case_sensitive=False)

    #: Base URL of the TalkMe bot API (``customBot/...`` calls are made under it).
    api_url: str = DEFAULT_API_URL
    #: When set, the webhook only accepts requests carrying it (path or ``?secret=``).
    webhook_secret: SecretStr | None = None
    #: Refuse to start without ``webhook_secret``: without one, anyone who learns the
    #: webhook URL can make the gateway call the model (and spend the bill) as any visitor.
    require_secret: bool = False
    #: Send nothing to TalkMe: log and count every call that would have been made.
    test_mode: bool = False
    #: Longer replies are split into several TalkMe messages of at most this many characters.
    max_message_chars: int = Field(4000, ge=20, le=100_000)
    #: ``customBot/finish`` code sent when the visitor is handed to a human operator.
    operator_code: str = Field("OPERATOR_REQUEST", min_length=1)
    #: ``ttl`` of the "typing" indicator shown while the agent works; 0 shows none.
    typing_ttl_s: int = Field(15, ge=0, le=60)
    #: How long the agent waits for the typing call before starting anyway.
    typing_wait_s: float = Field(0.5, ge=0, le=10)
    #: Messages a visitor sends within this many milliseconds of each other are answered
    #: together, as one; 0 answers each at once.
    debounce_ms: int = Field(0, ge=0, le=60_000)
    #: Timeout of one call to the TalkMe API.
    request_timeout_s: float = Field(10.0, gt=0, le=300)

    def review(self, core: CoreSettings) -> list[str]:
        if self.webhook_secret is not None:
            return []
        if self.require_secret:
            raise ValueError(
                "TALKME_REQUIRE_SECRET is on but TALKME_WEBHOOK_SECRET is not set: "
                "the TalkMe channel will not start without a webhook secret"
            )
        return [
            "TALKME_WEBHOOK_SECRET is not set: anyone who learns the webhook URL can post "
            "to /webhook/talkme as any visitor and make the gateway call the model; set it "
            "and give TalkMe /webhook/talkme/<secret> (TALKME_REQUIRE_SECRET=true enforces it)"
        ]

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value
