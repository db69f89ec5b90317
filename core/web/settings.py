"""Settings of who may call the HTTP API: the three key kinds, public origins, visitor
tokens and the limits on public (web page) traffic.

They are core settings (top-level or ``[core]`` in TOML, env names without a prefix), kept
in their own class so the web layer's rules live in one place.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from core.config.settings import CommaList, CoreSettings, PluginSettings, split_commas

SecretList = Annotated[list[SecretStr], NoDecode]


class WebAccessSettings(PluginSettings):
    """``ADMIN_KEYS``, ``PUBLIC_KEYS``, ``PUBLIC_ORIGINS``, ``SECRET_KEY``, public limits."""

    section: ClassVar[str] = "core"
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_prefix="")

    #: Keys for the admin routes (``/metrics``, ``/api/debug``, TalkMe stats and deletes) and
    #: for any thread of any channel; admin routes accept no other key.
    admin_keys: SecretList = Field(default_factory=list)
    #: Publishable keys for web pages (the widget): chat, stream and ``/api/n8n/chat``, and
    #: only the visitor's own threads; accepted only from ``PUBLIC_ORIGINS``.
    public_keys: SecretList = Field(default_factory=list)
    #: Page origins allowed to use a public key (``https://shop.example.com``, comma list);
    #: required with ``PUBLIC_KEYS``. CORS answers these origins only.
    public_origins: CommaList = Field(default_factory=list)
    #: Signs visitor tokens; empty: a secret is generated once and kept in
    #: ``DATA_DIR/visitor_secret`` (set one shared value on every node of a cluster).
    secret_key: SecretStr | None = None
    #: Names this deployment inside visitor tokens, so another deployment's token is refused
    #: even under the same ``SECRET_KEY``; empty: derived from the secret.
    deployment_id: str = ""
    #: Days a visitor token stays valid (the visitor then starts afresh).
    visitor_token_ttl_days: float = Field(30.0, gt=0)
    #: Messages a minute one visitor (public key) may send; 0: no limit.
    public_visitor_per_minute: int = Field(10, ge=0)
    #: Messages a day one visitor (public key) may send; 0: no limit.
    public_visitor_per_day: int = Field(200, ge=0)
    #: Public-key messages a minute from one client IP (all its visitors); 0: no limit.
    public_ip_per_minute: int = Field(30, ge=0)
    #: Public-key messages a day from one client IP (all its visitors); 0: no limit.
    public_ip_per_day: int = Field(1000, ge=0)
    #: Longest message a public key may send (characters); longer ones get 413.
    public_max_message_chars: int = Field(2000, ge=1)
    #: Refuse to start when ``HOST`` is not a loopback address and no key of any kind is set
    #: (the chat endpoints would be open to anyone who can reach the port).
    require_api_key: bool = False

    @field_validator("admin_keys", "public_keys", "public_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("public_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = []
        for raw in value:
            origin = raw.rstrip("/")
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"not an origin (scheme://host[:port], no path, no wildcard): {raw!r}"
                )
            origins.append(origin.lower())
        return origins

    @model_validator(mode="after")
    def _public_needs_origins(self) -> WebAccessSettings:
        if self.public_key_values() and not self.public_origins:
            raise ValueError(
                "PUBLIC_KEYS needs PUBLIC_ORIGINS: list the origins of the pages that "
                "embed the chat (https://shop.example.com)"
            )
        return self

    def review(self, core: CoreSettings) -> list[str]:
        keys = core.api_key_values() or self.admin_key_values() or self.public_key_values()
        if keys or is_loopback(core.host):
            return []
        if self.require_api_key:
            raise ValueError(
                f"REQUIRE_API_KEY is on, HOST is {core.host} (not loopback) and no key is set "
                "(API_KEYS, PUBLIC_KEYS, ADMIN_KEYS): the HTTP API will not start open to the "
                "network"
            )
        return [
            f"no key is set (API_KEYS, PUBLIC_KEYS, ADMIN_KEYS) and the HTTP API listens on "
            f"{core.host} (not loopback): anyone who can reach the port can chat (and spend the "
            "model's bill); set API_KEYS (REQUIRE_API_KEY=true enforces it)"
        ]

    def admin_key_values(self) -> list[str]:
        return [key.get_secret_value() for key in self.admin_keys if key.get_secret_value()]

    def public_key_values(self) -> list[str]:
        return [key.get_secret_value() for key in self.public_keys if key.get_secret_value()]


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
