"""Memory, the inbox/outbox and conversation lanes in PostgreSQL, shared by every process.

Enable it in place of ``memory_sqlite`` (``PLUGINS=http_api,talkme,postgres,agent_openai``)
and point ``POSTGRES_DSN`` at the database; every table lives in ``POSTGRES_SCHEMA``.
Start-up migrates the schema (see :mod:`plugins.postgres.schema`) and refuses, with one
line, a schema that is newer than this code or belongs to another program. The plugin
provides the conversation store, the durable backend and the bus (lanes across
processes, :mod:`plugins.postgres.answering`), so any number of ``eneca-bot serve``
processes behind a load balancer keep one set of guarantees (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from typing import Any

from loguru import logger

from core import Check, Gateway, InProcessBus, PluginError, SessionCleared, hookimpl
from plugins.postgres.settings import PostgresSettings

PLUGIN_NAME = "postgres"

__all__ = ["PostgresPlugin", "PostgresSettings"]


class PostgresPlugin:
    """Opens the pool, migrates and joins the cluster at start-up; provides the store,
    the durable backend and the bus."""

    def __init__(self) -> None:
        self.db: Any = None
        self.store: Any = None
        self.runtime: Any = None
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
        from plugins.postgres.nodes import incarnation
        from plugins.postgres.queue import default_node_id
        from plugins.postgres.runtime import ClusterRuntime
        from plugins.postgres.store import PostgresConversationStore

        settings = gateway.settings_for(PostgresSettings)
        _mask(gateway, settings.dsn.get_secret_value())
        try:
            db, version = await open_database(settings)
        except PluginError as exc:
            raise PluginError(f"plugin {PLUGIN_NAME!r}: {exc}") from exc
        # Each start is a node of its own, whatever its configured name (see nodes.py).
        node_id = incarnation(gateway.settings.cluster_node_id or default_node_id())
        runtime = ClusterRuntime(db, settings.schema, node_id, gateway.settings.cluster_node_ttl_s)
        try:
            await runtime.start()
        except BaseException:
            await db.close()
            raise
        self.db = db
        self.runtime = runtime
        self.schema_version = version
        self.store = PostgresConversationStore(
            db,
            settings.schema,
            max_messages=settings.max_messages,
            max_chars=settings.max_chars,
            node_id=node_id,
        )
        logger.info(
            "PostgreSQL schema {} (version {}): memory, inbox/outbox and lanes; node {}",
            settings.schema,
            version,
            node_id,
        )
        try:
            yield
        finally:
            self.store = None
            self.runtime = None
            self.db = None
            try:
                await runtime.stop()
            finally:
                await db.close()

    @hookimpl
    def conversation_store(self) -> Any:
        return self.store

    @hookimpl
    def durable_backend(self) -> Any:
        return None if self.runtime is None else self.runtime.queue

    @hookimpl
    def message_bus(self, gateway: Gateway, handler: Any) -> Any:
        if self.runtime is None:
            return None
        settings = gateway.settings
        ours = self.store is not None and gateway.store is self.store
        window = (ours, self.store.max_messages if ours else None)
        return InProcessBus(
            self.runtime.lane_handler(handler, window),
            max_in_flight=settings.bus_max_in_flight,
            full_policy=settings.bus_full_policy,
            publish_timeout_s=settings.bus_publish_timeout_s,
        )

    @hookimpl
    async def session_cleared(self, event: SessionCleared) -> None:
        """Tell the other nodes, whose channels may hold state of this session."""
        if self.runtime is not None:
            try:
                await self.runtime.broadcast_cleared(event)
            except OSError as exc:  # the database is away: the clear itself already failed
                logger.warning("cluster: could not tell other nodes of a cleared session: {}", exc)

    @hookimpl
    async def health_check(self, gateway: Gateway) -> Check:
        settings = gateway.settings_for(PostgresSettings)
        runtime = self.runtime
        if self.store is None or runtime is None:
            return Check(PLUGIN_NAME, False, {"error": "not open"})
        node = runtime.node
        age = None if node.last_beat_at is None else round(time.time() - node.last_beat_at, 1)
        detail: dict[str, object] = {
            "schema": settings.schema,
            "schema_version": self.schema_version,
            "node": runtime.node_id,
            "live_nodes": node.live_nodes,
            "heartbeat_age_s": age,
            "listening": node.listening,
            "lanes_lost": sum(handler.fenced for handler in runtime.handlers),
        }
        if node.beat_error:
            detail["error"] = node.beat_error
        beating = age is not None and age < gateway.settings.cluster_node_ttl_s
        store_ok = True if gateway.store is self.store else await self.store.ping()
        return Check(PLUGIN_NAME, bool(store_ok and beating), detail)


def _mask(gateway: Gateway, secret: str) -> None:
    """Keep the DSN (it may carry a password) out of every log line."""
    gateway.mask_secrets(secret)
