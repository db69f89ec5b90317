"""Conversation memory and the inbox/outbox in PostgreSQL, shared by every gateway process.

Enable it in place of ``memory_sqlite`` (``PLUGINS=http_api,talkme,postgres,agent_openai``)
and point ``POSTGRES_DSN`` at the database; every table lives in ``POSTGRES_SCHEMA``.
Start-up migrates the schema (see :mod:`plugins.postgres.schema`) and refuses, with one
line, a schema that is newer than this code or belongs to another program.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from loguru import logger

from core import hookimpl
from core.errors import PluginError
from core.gateway import Gateway
from core.health import Check
from plugins.postgres.settings import PostgresSettings

PLUGIN_NAME = "postgres"

__all__ = ["PostgresPlugin", "PostgresSettings"]


class PostgresPlugin:
    """Opens the pool and migrates at start-up; offers the store (and, in cluster mode,
    the durable backend)."""

    def __init__(self) -> None:
        self.db: object | None = None
        self.store: object | None = None
        self.schema_version = 0

    @hookimpl
    def settings_model(self) -> type[PostgresSettings]:
        return PostgresSettings

    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction) -> None:
        from plugins.postgres.importer import add_commands

        add_commands(subparsers)

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        from plugins.postgres.connect import open_database
        from plugins.postgres.store import PostgresConversationStore

        settings = gateway.settings_for(PostgresSettings)
        _mask(gateway, settings.dsn.get_secret_value())
        try:
            db, version = await open_database(settings)
        except PluginError as exc:
            raise PluginError(f"plugin {PLUGIN_NAME!r}: {exc}") from exc
        self.db = db
        self.schema_version = version
        self.store = PostgresConversationStore(
            db,
            settings.schema,
            max_messages=settings.max_messages,
            max_chars=settings.max_chars,
        )
        logger.info(
            "conversation memory in PostgreSQL schema {} (version {})",
            settings.schema,
            version,
        )
        try:
            yield
        finally:
            self.store = None
            self.db = None
            await db.close()

    @hookimpl
    def conversation_store(self) -> object | None:
        return self.store

    @hookimpl
    async def health_check(self, gateway: Gateway) -> Check:
        settings = gateway.settings_for(PostgresSettings)
        if self.store is None:
            return Check(PLUGIN_NAME, False, {"error": "not open"})
        detail: dict[str, object] = {
            "schema": settings.schema,
            "schema_version": self.schema_version,
            "in_use": gateway.store is self.store,
        }
        ok = True if detail["in_use"] else await self.store.ping()  # type: ignore[attr-defined]
        return Check(PLUGIN_NAME, ok, detail)


def _mask(gateway: Gateway, secret: str) -> None:
    """Keep the DSN (it may carry a password) out of every log line."""
    mask = getattr(gateway, "mask_secrets", None)
    if mask is not None:
        mask(secret)
    else:  # before the core refactor the façade exposed the redactor itself
        gateway.redactor.add(secret)
