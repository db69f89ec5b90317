"""Conversation memory in SQLite: the default provider of the ``conversation_store`` hook.

Turns live in ``DATA_DIR/checkpoints.db`` (or ``MEMORY_SQLITE_PATH``); the agent sees the
newest ``MEMORY_MAX_MESSAGES`` turns (optionally within ``MEMORY_MAX_CHARS``), and with
``MEMORY_TTL_DAYS`` conversations idle that long are purged. Another plugin replaces this
one by implementing ``conversation_store`` without ``trylast``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from loguru import logger

from core import Check, Gateway, PluginError, hookimpl
from plugins.memory_sqlite.retention import PurgeFigures, purge_periodically
from plugins.memory_sqlite.settings import MemorySettings
from plugins.memory_sqlite.store import SqliteConversationStore

PLUGIN_NAME = "memory_sqlite"

__all__ = ["MemorySettings", "SqliteConversationStore", "SqliteMemoryPlugin"]


class SqliteMemoryPlugin:
    """Opens the store at start-up, offers it as the conversation store, purges if asked."""

    def __init__(self) -> None:
        self.store: SqliteConversationStore | None = None
        self.purge = PurgeFigures()
        self._purge_task: asyncio.Task[None] | None = None

    @hookimpl
    def settings_model(self) -> type[MemorySettings]:
        return MemorySettings

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        settings = gateway.settings_for(MemorySettings)
        path = settings.database_path(Path(gateway.settings.data_dir))
        store = SqliteConversationStore(
            path,
            max_messages=settings.max_messages,
            max_chars=settings.max_chars,
            busy_timeout_ms=settings.busy_timeout_ms,
            check_on_open=settings.check_on_start,
        )
        try:
            await store.open()
        except PluginError as exc:
            raise PluginError(f"plugin {PLUGIN_NAME!r}: {exc}") from exc
        self.store = store
        logger.info("conversation memory in {} (schema {})", path, store.schema_version)
        ttl_s = settings.ttl_seconds
        if ttl_s is not None:
            self._purge_task = asyncio.create_task(
                purge_periodically(store, ttl_s, settings.purge_interval_s, self.purge),
                name="memory_sqlite.purge",
            )
        try:
            yield
        finally:
            if self._purge_task is not None:
                self._purge_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._purge_task
                self._purge_task = None
            self.store = None
            await store.close()

    @hookimpl
    def database_files(self, gateway: Gateway) -> list[Path]:
        settings = gateway.settings_for(MemorySettings)
        return [settings.database_path(Path(gateway.settings.data_dir))]

    @hookimpl(trylast=True)
    def conversation_store(self) -> SqliteConversationStore | None:
        return self.store

    @hookimpl
    async def health_check(self, gateway: Gateway) -> Check:
        store = self.store
        if store is None:
            return Check(PLUGIN_NAME, False, {"error": "not open"})
        detail: dict[str, object] = {
            "path": str(store.path),
            "schema_version": store.schema_version,
            "size_bytes": store.size_bytes(),
            "in_use": gateway.store is store,
        }
        if self._purge_task is not None:
            detail["purge"] = {
                "runs": self.purge.runs,
                "removed": self.purge.removed,
                "last_run_at": self.purge.last_run_at,
                "last_error": self.purge.last_error,
            }
        # In use, the gateway's own "store" check already pings it (with a timeout): one
        # writer round trip per /health is enough.
        ok = True if detail["in_use"] else await store.ping()
        return Check(PLUGIN_NAME, ok, detail)
