"""Settings of the postgres plugin: TOML section ``[postgres]``, env ``POSTGRES_*``."""

from __future__ import annotations

import re
import warnings
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from core import PluginSettings

DEFAULT_SCHEMA = "eneca_bot"

#: A schema name that needs no quoting: it is written into the SQL text once at start-up.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# The field ``schema`` (env POSTGRES_SCHEMA, as the issue and docs name it) shadows
# pydantic's deprecated ``BaseModel.schema()``, which nothing here calls.
warnings.filterwarnings("ignore", 'Field name "schema" in "PostgresSettings" shadows')


class PostgresSettings(PluginSettings):
    """Where the cluster's shared state lives. Every field is ``POSTGRES_<FIELD>``."""

    section: ClassVar[str] = "postgres"
    model_config = SettingsConfigDict(env_prefix="POSTGRES_", extra="ignore", case_sensitive=False)

    #: The database (libpq URL or key=value string), e.g.
    #: ``postgresql://postgres@127.0.0.1:5432/test``; may carry a password.
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    #: The schema every table lives in, so several deployments share one database
    #: (lower-case letters, digits and ``_``).
    schema: str = DEFAULT_SCHEMA
    #: Connections each gateway process keeps open to the database (at most).
    pool_size: int = Field(10, ge=2, le=200)
    #: Longest one statement may run (milliseconds); 0 leaves the server's setting.
    #: Sent as a start-up option: behind PgBouncer set it on the database role instead.
    statement_timeout_ms: int = Field(5000, ge=0)
    #: Turns handed to the agent: the most recent window of each conversation.
    max_messages: int = Field(40, ge=1)
    #: Optional budget of characters for that window (the newest turn is always kept).
    max_chars: int | None = Field(None, ge=1)
    #: Let psycopg prepare statements run often (faster). Turn off behind a PgBouncer in
    #: transaction mode older than 1.21 (or without ``max_prepared_statements``).
    prepared_statements: bool = True

    @field_validator("schema")
    @classmethod
    def _plain_schema_name(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError(
                "must be lower-case letters, digits and '_' (at most 63), starting with a letter"
            )
        return value
