"""The gateway façade that every hook receives: its public members are the plugin API
(docs/plugins.md, "The gateway"); the engine and durable rooms behind it are private.
Built, started and stopped by :func:`core.web.app.create_app`."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from loguru import logger
from pydantic_settings import BaseSettings

from core import tracing
from core.config.settings import CoreSettings
from core.contract.agent import Agent
from core.contract.events import Message, SessionCleared
from core.contract.knowledge import Passage
from core.contract.store import ConversationStore
from core.durable.inbox import Inbox
from core.durable.outbox import Outbox
from core.durable.retention import purge_settled
from core.durable.sqlite import DurableQueue
from core.durable.storage import StorageWatch
from core.engine.bus import InProcessBus, MessageBus, ReplyHandle
from core.engine.health import health_report
from core.engine.memory import InMemoryConversationStore
from core.engine.pipeline import ObserveReply, Pipeline
from core.engine.ratelimit import GatewayLimits
from core.logs import Redactor
from core.plugins import call_hook

if TYPE_CHECKING:  # the web room builds it; the façade only hands it on
    from core.web.access import WebAccess

S = TypeVar("S", bound=BaseSettings)


class Gateway:
    """One running gateway, as plugins see it."""

    def __init__(
        self,
        settings: CoreSettings,
        pm: pluggy.PluginManager,
        plugin_settings: Mapping[type[BaseSettings], BaseSettings],
        redactor: Redactor,
        version: str,
        *,
        observe_reply: ObserveReply | None = None,
        observe_delivery: Callable[[str, str], None] | None = None,
        access: WebAccess | None = None,
    ) -> None:
        #: The gateway's own settings (``CoreSettings``).
        self.settings = settings
        #: The running eneca-bot version.
        self.version = version
        self._pm = pm
        self._redactor = redactor
        self._plugin_settings = dict(plugin_settings)
        self._started_at = time.time()
        self._hook = functools.partial(call_hook, pm, gateway=self)
        self._storage = StorageWatch(Path(settings.data_dir))
        self._durable = DurableQueue(Path(settings.data_dir) / "gateway.db")
        self._outbox = Outbox(
            self._durable,
            lambda reply, attempt, progress: self._hook(
                "deliver_reply", reply=reply, attempt=attempt, progress=progress
            ),
            max_attempts=settings.delivery_max_attempts,
            base_delay_s=settings.delivery_base_delay_s,
            max_delay_s=settings.delivery_max_delay_s,
            observe=observe_delivery,
        )
        self._inbox = Inbox(self._durable, self._storage, self._outbox.notify)
        self._pipeline = Pipeline(settings, self._hook, self._inbox, self._storage, observe_reply)
        self._bus: MessageBus = InProcessBus(
            self._pipeline.answer,
            max_in_flight=settings.bus_max_in_flight,
            full_policy=settings.bus_full_policy,
            publish_timeout_s=settings.bus_publish_timeout_s,
        )
        self._limits = GatewayLimits()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._access = access

    # -- configuration ---------------------------------------------------------------------

    def settings_for(self, settings_cls: type[S]) -> S:
        """The loaded settings of a plugin (declared with the ``settings_model`` hook)."""
        if settings_cls not in self._plugin_settings:
            raise LookupError(f"{settings_cls.__name__} was not declared by settings_model")
        return self._plugin_settings[settings_cls]  # type: ignore[return-value]

    @property
    def access(self) -> WebAccess:
        """Who may call the HTTP API: keys and their kinds, visitor tokens, thread owners,
        the public-traffic limits (``core.web.access``)."""
        assert self._access is not None, "this gateway was built without the web room"
        return self._access

    @property
    def plugin_names(self) -> list[str]:
        """The enabled plugins, in registration order."""
        return [name for name, _ in self._pm.list_name_plugin()]

    # -- what answers messages -------------------------------------------------------------

    @property
    def store(self) -> ConversationStore:
        """The conversation store (from ``conversation_store``, else in-process)."""
        assert self._pipeline.store is not None, "the gateway has not started"
        return self._pipeline.store

    @property
    def agent(self) -> Agent | None:
        """The agent (from the ``agent`` hook), ``None`` when no plugin provides one."""
        return self._pipeline.agent

    async def publish(
        self, message: Message, *, durable: bool = False, debounce_s: float = 0.0
    ) -> ReplyHandle | None:
        """Queue a message for the agent; a handle to ``await handle.reply()`` or iterate
        ``handle.chunks()``. ``durable=True`` keeps it in the inbox first and delivers its
        reply through ``deliver_reply``, also after a restart; then ``None`` means the
        provider already sent this ``message_id``. ``debounce_s`` answers a conversation's
        quick successive messages together. Raises ``BusFullError`` / ``BusClosedError``
        (and ``StorageUnavailable`` when durable) when it cannot be taken."""
        if not durable:
            return await self._bus.publish(message, debounce_s)
        # Shielded: a webhook handler cancelled by its client's disconnect must not leave
        # a message kept in the inbox but never queued.
        return await asyncio.shield(
            self._inbox.keep(message, functools.partial(self._bus.publish, message, debounce_s))
        )

    async def clear_session(
        self, conversation_id: str | None = None, channel: str | None = None
    ) -> int:
        """Forget one conversation, or every conversation of ``channel`` (undelivered
        replies are dropped); fires ``session_cleared``. Returns how many turns (one
        conversation) or conversations (a channel) were removed."""
        if conversation_id is not None:
            removed = await self.store.clear(conversation_id)
        elif channel is not None:
            removed = await self.store.clear_channel(channel)
        else:
            raise ValueError("clear_session needs a conversation_id or a channel")
        if channel is not None:
            await self._durable.forget_channel(channel, conversation_id)
        await self._hook("session_cleared", event=SessionCleared(conversation_id, channel))
        return removed

    async def knowledge_search(self, query: str, limit: int = 5) -> list[Passage]:
        """Passages from whichever plugin provides ``knowledge_search`` (none: empty)."""
        return list(await self._hook("knowledge_search", query=query, limit=limit) or [])

    async def check_rate(self, key: str, what: str = "requests") -> None:
        """Count one request for ``key``; raises ``RateLimited`` (HTTP 429 with
        ``Retry-After``) when over ``RATE_LIMIT_PER_MINUTE`` (0: no limit), as counted by
        the ``rate_limit_backend`` (in process when no plugin provides one)."""
        await self._limits.check(key, self.settings.rate_limit_per_minute, what)

    def mask_secrets(self, *values: str | None) -> None:
        """Mask these values (tokens, keys) as ``***`` in every log line from now on."""
        self._redactor.add(*values)

    def span(
        self,
        name: str,
        *,
        kind: tracing.SpanKind = "internal",
        parent: str | None = None,
        attributes: tracing.Attributes | None = None,
    ) -> tracing.SpanScope:
        """A tracing span around a ``with`` block (docs/tracing.md); free when tracing is off."""
        return tracing.span(name, kind=kind, parent=parent, attributes=attributes)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Every component's check (bus, store, storage, each plugin's ``health_check``):
        whether all are ok, and the report ``GET /health`` shows."""
        return await health_report(
            (self._running, self._bus.stats()),
            self._limits.state(),
            self.store,
            self._storage,
            self._outbox,
            lambda: self._hook("health_check"),
        )

    async def delivery_stats(self, channel: str | None = None) -> dict[str, Any]:
        """Inbox/outbox totals of ``channel`` (or all): ``received``, ``duplicates``,
        ``unanswered``, ``delivered``, ``failed``, ``retries``, ``pending_deliveries``."""
        return await self._durable.stats(channel)

    async def delivery_latencies(self, channel: str, limit: int = 1000) -> list[float]:
        """Seconds from webhook to delivered reply, most recent deliveries first."""
        return await self._durable.delivery_latencies(channel, limit)

    # -- lifecycle (driven by core.web.app, not for plugins) -------------------------------

    async def _start(self) -> None:
        """Resolve the store and agent, replay kept messages, start delivery."""
        store = await self._hook("conversation_store")
        if store is None:
            logger.warning("no memory plugin enabled: conversations are kept in process only")
            store = InMemoryConversationStore()
        self._pipeline.store = store
        self._pipeline.agent = await self._hook("agent")
        if self._pipeline.agent is None:
            logger.warning("no agent plugin enabled: every message gets the fallback text")
        if backend := await self._hook("durable_backend"):
            self._durable = self._inbox.use(backend, self._outbox)
        self._storage.watch(store.ping, disk=not backend)
        await self._durable.open()
        self._bus = await self._hook("message_bus", handler=self._pipeline.answer) or self._bus
        self._limits.backend = await self._hook("rate_limit_backend") or self._limits.backend
        self._running = True
        self._outbox.start()
        again = functools.partial(self._bus.publish, overflow=True)  # kept: past the bound
        self._inbox.share(again, self._outbox.notify, self._hook)
        await self._inbox.replay(again)
        if self.settings.durable_retention_days > 0:
            purger = purge_settled(self._durable, self.settings.durable_retention_days)
            self._tasks.append(asyncio.create_task(purger, name="durable-retention"))

    async def _stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        figures = await self._bus.drain(self.settings.shutdown_grace_s)
        await self._outbox.stop(min(self.settings.shutdown_grace_s, 5.0))
        await self._durable.close()
        logger.info("bus drained: {}", figures)
