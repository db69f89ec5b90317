"""Configuration: defaults < TOML file < ``.env`` < environment < CLI flags.

Every plugin owns a :class:`PluginSettings` subclass with its TOML section and env prefix;
the gateway's own keys live in :class:`CoreSettings` (top-level keys or ``[core]``).
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.contract.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("config/settings.toml")
DEFAULT_PLUGINS = ("http_api", "talkme", "memory_sqlite", "agent_openai")

#: The TOML document the settings being built read from (set only while building).
_toml_document: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "_toml_document", default=MappingProxyType({})
)

S = TypeVar("S", bound=BaseSettings)

CommaList = Annotated[list[str], NoDecode]


def split_commas(value: Any) -> Any:
    """Accept ``"a, b,c"`` (env) as well as a list (TOML)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _TomlSection(PydanticBaseSettingsSource):
    """Reads one section of the already-parsed TOML document (lowest priority)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = {k.lower(): v for k, v in values.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            name: self._values[name]
            for name in self.settings_cls.model_fields
            if name in self._values
        }


class PluginSettings(BaseSettings):
    """Base for a plugin's settings. Set ``section`` and ``model_config['env_prefix']``."""

    section: ClassVar[str] = ""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        document = _toml_document.get()
        section = document.get(cls.section, {}) if cls.section else {}
        if cls.section == "core":
            top_level = {k: v for k, v in document.items() if not isinstance(v, dict)}
            section = {**top_level, **(section if isinstance(section, dict) else {})}
        if not isinstance(section, dict):
            section = {}
        return init_settings, env_settings, dotenv_settings, _TomlSection(settings_cls, section)

    def review(self, core: CoreSettings) -> list[str]:
        """Warnings about a valid but risky configuration (an open door: a webhook without a
        secret...), printed by ``eneca-bot check`` and logged once at start-up. Raise
        ``ValueError`` naming the settings to refuse the configuration outright."""
        return []


class CoreSettings(PluginSettings):
    """The gateway's own settings (env names without a prefix)."""

    section: ClassVar[str] = "core"

    #: Interface to listen on; ``0.0.0.0`` to accept connections from other machines.
    host: str = "127.0.0.1"
    #: Port to listen on.
    port: int = Field(8000, ge=1, le=65535)
    #: The plugins that run (comma list); one that is missing stops start-up.
    plugins: CommaList = Field(default_factory=lambda: list(DEFAULT_PLUGINS))
    #: Where SQLite files live (memory, inbox/outbox, knowledge index); unset: systemd's
    #: ``STATE_DIRECTORY`` if set, else ``data`` in the working directory.
    data_dir: Path = Field(
        default_factory=lambda: systemd_dir("STATE_DIRECTORY", "data"), validate_default=True
    )
    #: Where log files are written; unset: systemd's ``LOGS_DIRECTORY`` if set, else ``logs``
    #: in the working directory.
    log_dir: Path = Field(
        default_factory=lambda: systemd_dir("LOGS_DIRECTORY", "logs"), validate_default=True
    )
    #: The log file, under ``log_dir`` unless absolute; empty: console only (journald,
    #: containers).
    log_file: str = "app.log"
    #: TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR or CRITICAL.
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: Log JSON lines instead of text (console and file).
    log_json: bool = False
    #: When the log file is rotated (a size or a period, as loguru reads it).
    log_rotation: str = "10 MB"
    #: How long rotated logs are kept.
    log_retention: str = "14 days"
    #: Server-to-server keys (n8n, back ends): chat, stream, ``/api/n8n/chat`` and the HTTP
    #: channel's threads; admin routes need ``ADMIN_KEYS``.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    #: Header carrying the key (``Authorization: Bearer <key>`` works too).
    api_key_header: str = "X-API-Key"
    #: Largest request body any endpoint accepts (bytes).
    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: Longest a client may take to send a request body (seconds); a slower one gets 408.
    body_read_timeout_s: float = Field(30.0, gt=0)
    #: Messages accepted but not yet answered, over all conversations.
    bus_max_in_flight: int = Field(1000, ge=1)
    #: When the bus is full: ``wait`` up to ``bus_publish_timeout_s``, or ``reject`` at once.
    bus_full_policy: Literal["wait", "reject"] = "wait"
    #: How long a publish waits for room when the bus is full (``wait`` policy).
    bus_publish_timeout_s: float = Field(5.0, ge=0)
    #: How long in-flight conversations may take to finish on shut-down.
    shutdown_grace_s: float = Field(10.0, ge=0)
    #: Attempts to deliver a reply of a durable channel (TalkMe, Telegram...) before
    #: giving up.
    delivery_max_attempts: int = Field(8, ge=1)
    #: First retry delay; doubled each attempt, with jitter.
    delivery_base_delay_s: float = Field(1.0, ge=0)
    #: Longest delay between two attempts (also caps a provider's Retry-After).
    delivery_max_delay_s: float = Field(60.0, ge=0)
    #: Days delivered replies (and their messages, for duplicate detection) stay in the
    #: inbox/outbox before they are purged; 0 keeps them forever.
    durable_retention_days: float = Field(7.0, ge=0)
    #: Requests a minute per API key, per client IP and per visitor (0: no limit).
    rate_limit_per_minute: int = Field(0, ge=0)
    #: Proxies whose X-Forwarded-For and X-Forwarded-Prefix are believed (addresses or
    #: networks, comma list), e.g. ``127.0.0.1`` behind a local nginx.
    trusted_proxies: CommaList = Field(default_factory=list)
    #: Longest time one reply may take, the agent's retries included; then the fallback.
    reply_timeout_s: float = Field(120.0, gt=0)
    #: Text sent when no agent plugin runs or the agent fails unexpectedly.
    fallback_text: str = "Sorry, I can't answer right now. Please try again later."
    #: Public path prefix behind a reverse proxy (e.g. ``/ai-webhook``), used in links;
    #: ``X-Forwarded-Prefix`` from a trusted proxy overrides it.
    root_path: str = ""
    #: This process's name in a cluster (a plugin sharing state, e.g. ``postgres``);
    #: empty: host name and process id. Each start is a node of its own (the name,
    #: ``#`` and a token), so a restarted process never takes its last run's work for its own.
    cluster_node_id: str = ""
    #: Seconds without a heartbeat after which a cluster node counts as stopped and the
    #: others take over its conversations and kept messages.
    cluster_node_ttl_s: float = Field(5.0, ge=0.5, le=600)

    @field_validator("plugins", "api_keys", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("data_dir", "log_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, at start-up: nothing later depends on the working directory.
        return value.expanduser().absolute()

    @field_validator("root_path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        from core.web.public_path import normalise_prefix

        prefix = normalise_prefix(value)
        if prefix is None:
            raise ValueError(f"not a URL path prefix such as /ai-webhook: {value!r}")
        return prefix

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from core.web.client import parse_networks

        parse_networks(value)  # raises ValueError naming the bad entry
        return value

    def api_key_values(self) -> list[str]:
        return [key.get_secret_value() for key in self.api_keys if key.get_secret_value()]


def systemd_dir(variable: str, fallback: str) -> Path:
    """The first directory systemd gives in ``variable`` (``StateDirectory=`` sets
    ``STATE_DIRECTORY``...; several are separated by ``:``), else ``fallback``."""
    given = os.environ.get(variable, "").split(":")[0]
    return Path(given) if given else Path(fallback)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; a missing default file is an empty config."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field_name}".upper()


def _is_secret(settings_cls: type[BaseSettings], field_name: str) -> bool:
    """A value never repeated in a message: a name that says so, or a ``SecretStr`` field
    (a URL or DSN that may carry a password)."""
    if any(word in field_name for word in ("key", "token", "secret", "password")):
        return True
    field = settings_cls.model_fields.get(field_name)
    return field is not None and "SecretStr" in str(field.annotation)


def describe_validation_error(
    settings_cls: type[BaseSettings],
    exc: ValidationError,
    where: Callable[[str], str] | None = None,
) -> str:
    """One line per problem: where the key was set (``where``, else its env name), what is
    wrong, what was given."""
    where = where or (lambda field_name: env_name(settings_cls, field_name))
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule over several keys: its message names them
            lines.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field_name = str(error["loc"][0]) if error["loc"] else "?"
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        if _is_secret(settings_cls, field_name):
            shown = ""
        lines.append(f"{where(field_name)}: {error['msg']}{shown}")
    return "; ".join(lines)


def build_settings(
    settings_cls: type[S],
    document: Mapping[str, Any],
    env_file: Path | None,
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
) -> S:
    """Instantiate ``settings_cls`` with the layered sources, or raise :class:`ConfigError`
    naming where each bad value came from (``config_file`` and key, ``.env``, environment
    variable or flag)."""
    from core.config.sources import source_of

    token = _toml_document.set(document)
    kwargs: dict[str, Any] = dict(overrides or {})
    try:
        return settings_cls(_env_file=env_file, **kwargs)  # type: ignore[call-arg]
    except ValidationError as exc:

        def where(field_name: str) -> str:
            return source_of(
                settings_cls,
                field_name,
                document=document,
                config_file=config_file,
                env_file=env_file,
                overrides=kwargs,
            )

        raise ConfigError(describe_validation_error(settings_cls, exc, where)) from None
    finally:
        _toml_document.reset(token)


def config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (then it must exist)."""
    if explicit:
        return Path(explicit), True
    if os.environ.get("ENECA_CONFIG"):
        return Path(os.environ["ENECA_CONFIG"]), True
    return DEFAULT_CONFIG_FILE, False
