"""The gateway: what every hook receives. It owns the bus, the store, the agent and the
durable inbox/outbox, and runs the pipeline that answers one message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import pluggy
from aiohttp import web
from loguru import logger
from pydantic_settings import BaseSettings

from core.agent import Agent, AgentRequest, Tool
from core.bus import InProcessBus, MessageBus, ReplyHandle
from core.delivery import DeliveryProgress, DeliveryResult
from core.durable import DurableQueue
from core.events import (
    MERGED_IDS,
    Message,
    Reply,
    ReplyError,
    SessionCleared,
    public_metadata,
)
from core.health import Check
from core.logs import Redactor
from core.memory import InMemoryConversationStore
from core.metrics import Metrics
from core.outbox import Outbox
from core.plugins import call_each, call_first
from core.ratelimit import RateLimiter, client_ip, parse_networks
from core.settings import CoreSettings
from core.storage import StorageUnavailable, StorageWatch
from core.store import ConversationStore, Turn

S = TypeVar("S", bound=BaseSettings)

#: How often a conversation held by a storage failure checks whether writes work again.
STORAGE_RETRY_S = 1.0


class Gateway:
    """One running gateway. Created by :func:`core.app.create_app`; plugins get it in hooks."""

    def __init__(
        self,
        settings: CoreSettings,
        pm: pluggy.PluginManager,
        plugin_settings: Mapping[type[BaseSettings], BaseSettings],
        redactor: Redactor,
        version: str,
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.version = version
        self.redactor = redactor
        self._plugin_settings = dict(plugin_settings)
        self.started_at = time.time()
        self.metrics = Metrics()
        self.bus: MessageBus = InProcessBus(
            self._answer,
            max_in_flight=settings.bus_max_in_flight,
            full_policy=settings.bus_full_policy,
            publish_timeout_s=settings.bus_publish_timeout_s,
        )
        self.durable = DurableQueue(Path(settings.data_dir) / "gateway.db")
        self.outbox = Outbox(
            self.durable,
            self._deliver,
            max_attempts=settings.delivery_max_attempts,
            base_delay_s=settings.delivery_base_delay_s,
            max_delay_s=settings.delivery_max_delay_s,
            observe=lambda channel, outcome: self.metrics.deliveries.labels(channel, outcome).inc(),
        )
        self.rate_limiter = (
            RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
        )
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self._store: ConversationStore | None = None
        self._agent: Agent | None = None
        self._durable_ids: set[str] = set()
        #: Failed writes (disk full...): 503s and a degraded /health until one succeeds.
        self.storage = StorageWatch()
        self._purger: asyncio.Task[None] | None = None
        self._running = False

    # -- what plugins use -----------------------------------------------------------------

    def settings_for(self, settings_cls: type[S]) -> S:
        """The loaded settings of a plugin (declared with the ``settings_model`` hook)."""
        try:
            return self._plugin_settings[settings_cls]  # type: ignore[return-value]
        except KeyError:
            raise LookupError(
                f"{settings_cls.__name__} was not declared by settings_model"
            ) from None

    @property
    def store(self) -> ConversationStore:
        assert self._store is not None, "the gateway has not started"
        return self._store

    @property
    def agent(self) -> Agent | None:
        return self._agent

    @property
    def plugin_names(self) -> list[str]:
        return [name for name, _ in self.pm.list_name_plugin()]

    def check_rate(self, key: str, what: str = "requests") -> None:
        """Count one request for ``key``; a 429 ``ApiError`` when over
        ``RATE_LIMIT_PER_MINUTE`` (no limit when it is 0)."""
        if self.rate_limiter is not None:
            self.rate_limiter.check(key, what)

    def client_ip(self, request: web.Request) -> str:
        """The caller's address, believing X-Forwarded-For only from ``TRUSTED_PROXIES``."""
        return client_ip(request, self.trusted_proxies)

    async def publish(
        self, message: Message, *, durable: bool = False, debounce_s: float = 0.0
    ) -> ReplyHandle | None:
        """Queue a message for the agent.

        Returns a handle to await the reply (``await handle.reply()``) or iterate its
        chunks. With ``durable=True`` the message is written to the inbox first and its
        reply is delivered through ``deliver_reply``, also after a restart; the return
        value is ``None`` when the provider already sent this ``message_id`` (a duplicate).
        Raises :class:`~core.errors.BusFullError` / ``BusClosedError`` when it cannot be
        taken. ``debounce_s`` answers a conversation's quick successive messages together.
        """
        if not durable:
            return await self.bus.publish(message, debounce_s)
        # Shielded: a webhook handler cancelled by its client's disconnect must not leave
        # a message kept in the inbox but never queued.
        return await asyncio.shield(self._publish_durable(message, debounce_s))

    async def _publish_durable(self, message: Message, debounce_s: float) -> ReplyHandle | None:
        with self.storage.writing("keep the message"):
            accepted = await self.durable.accept(message)
        if not accepted:
            logger.info("duplicate {} message {} ignored", message.channel, message.message_id)
            return None
        self._durable_ids.add(message.id)
        try:
            return await self.bus.publish(message, debounce_s)
        except BaseException:
            self._durable_ids.discard(message.id)
            await self.durable.withdraw(message.id)
            raise

    async def clear_session(
        self, conversation_id: str | None = None, channel: str | None = None
    ) -> int:
        """Forget one conversation, or every conversation of ``channel``; fires
        ``session_cleared``. Returns how many turns (one) or conversations (channel)
        were removed."""
        if conversation_id is not None:
            removed = await self.store.clear(conversation_id)
        elif channel is not None:
            removed = await self.store.clear_channel(channel)
        else:
            raise ValueError("clear_session needs a conversation_id or a channel")
        if channel is not None:
            await self.durable.forget_channel(channel, conversation_id)
        await call_each(
            self.pm, "session_cleared", gateway=self, event=SessionCleared(conversation_id, channel)
        )
        return removed

    async def knowledge_search(self, query: str, limit: int = 5) -> list[Any]:
        """Passages from whichever plugin provides ``knowledge_search`` (none: empty)."""
        return list(
            await call_first(self.pm, "knowledge_search", gateway=self, query=query, limit=limit)
            or []
        )

    async def health(self) -> tuple[bool, dict[str, Any]]:
        checks: list[Check] = [Check("bus", self._running, self.bus.stats())]
        try:
            store_ok = await asyncio.wait_for(self.store.ping(), 2.0)
        except Exception as exc:
            store_ok = False
            logger.warning("store health check failed: {}", exc)
        checks.append(Check("store", store_ok, {"backend": type(self.store).__name__}))
        await self.storage.probe(Path(self.settings.data_dir))  # room again after a failure?
        checks.append(self.storage.check())
        for plugin, result in await call_each(self.pm, "health_check", gateway=self):
            for check in result if isinstance(result, list | tuple) else [result]:
                checks.append(
                    Check(
                        f"{plugin}" if check.name == plugin else f"{plugin}.{check.name}",
                        check.ok,
                        check.detail,
                    )
                )
        report = {check.name: {"ok": check.ok, **check.detail} for check in checks}
        return all(check.ok for check in checks), report

    # -- lifecycle (driven by core.app) -------------------------------------------------

    async def start(self) -> None:
        """Resolve the store and agent, replay unanswered durable messages, start delivery."""
        store = await call_first(self.pm, "conversation_store", gateway=self)
        if store is None:
            logger.warning("no memory plugin enabled: conversations are kept in process only")
            store = InMemoryConversationStore()
        self._store = store
        self._agent = await call_first(self.pm, "agent", gateway=self)
        if self._agent is None:
            logger.warning("no agent plugin enabled: every message gets the fallback text")
        self._running = True
        self.outbox.start()
        pending = await self.durable.unanswered()
        for message in pending:
            self._durable_ids.add(message.id)
            # Kept messages may outnumber BUS_MAX_IN_FLIGHT after a crash: they are
            # queued anyway (new traffic waits for room), in order, before serving.
            await self.bus.publish(message, overflow=True)
        if pending:
            logger.info("answering {} message(s) accepted before the last stop", len(pending))
        if self.settings.durable_retention_days > 0:
            self._purger = asyncio.create_task(self._purge_settled(), name="durable-retention")

    async def _purge_settled(self) -> None:
        """Hourly: drop inbox/outbox rows settled longer than DURABLE_RETENTION_DAYS."""
        while True:
            cutoff = time.time() - self.settings.durable_retention_days * 86400
            try:
                removed = await self.durable.purge(cutoff)
            except Exception as exc:  # storage trouble: try again next time
                logger.warning("inbox/outbox retention could not run: {}", exc)
            else:
                if removed:
                    logger.info("inbox/outbox retention removed {} settled row(s)", removed)
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        self._running = False
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        figures = await self.bus.drain(self.settings.shutdown_grace_s)
        await self.outbox.stop(min(self.settings.shutdown_grace_s, 5.0))
        logger.info("bus drained: {}", figures)

    # -- the pipeline -------------------------------------------------------------------

    async def _answer(self, message: Message, handle: ReplyHandle) -> Reply:
        with logger.contextualize(conversation_id=message.conversation_id):
            while True:
                try:
                    with self.storage.writing("store the conversation"):
                        return await self._answer_in_context(message, handle)
                except StorageUnavailable:
                    if message.id not in self._durable_ids:
                        raise
                    # Kept (200 sent): hold this conversation's lane and answer again
                    # once the disk takes writes, so its later messages cannot overtake
                    # it. At shut-down it stays in the inbox for the next start.
                    await self._until_storage_works()
                except Exception as exc:
                    if message.id not in self._durable_ids:
                        raise
                    # A kept message must be settled, or it waits for the next restart
                    # and fails again there: the visitor gets the fallback instead.
                    logger.opt(exception=exc).error(
                        "answering a kept {} message failed; sending the fallback text",
                        message.channel,
                    )
                    reply = self._fallback(message, "internal_error", "the message failed")
                    with self.storage.writing("queue the reply"):
                        await self.durable.answer(reply)
                    self._settled(message)
                    return reply

    async def _until_storage_works(self) -> None:
        while self.storage.failure is not None:
            await asyncio.sleep(STORAGE_RETRY_S)
            await self.storage.probe(Path(self.settings.data_dir))
        logger.info("storage works again: answering the message held by the failure")

    def _settled(self, message: Message) -> None:
        """A durable message's reply is in the outbox: let the outbox send it."""
        self._durable_ids.discard(message.id)
        self._durable_ids.difference_update(message.metadata.get(MERGED_IDS, ()))
        self.outbox.notify()

    async def _answer_in_context(self, message: Message, handle: ReplyHandle) -> Reply:
        store = self.store
        turn = Turn(
            "user",
            message.text,
            message.channel,
            message.user_id,
            message.message_id or message.id,
            message.received_at,
            public_metadata(message.metadata),
        )
        history: list[Turn] | None = None
        # One step when the store offers it (core.store.AppendsWithHistory).
        append_and_history = getattr(store, "append_and_history", None)
        if self._agent is not None and append_and_history is not None:
            history = await append_and_history(message.conversation_id, turn)
        else:
            await store.append(message.conversation_id, turn)
        await call_each(self.pm, "message_received", gateway=self, message=message)
        reply = await self._run_agent(message, handle, history)
        if reply.success:
            await store.append(
                message.conversation_id,
                Turn(
                    "assistant",
                    reply.text,
                    message.channel,
                    None,
                    message.message_id or message.id,
                    reply.created_at,
                    {"usage": dict(reply.usage)} if reply.usage else {},
                ),
            )
        if message.id in self._durable_ids:
            await self.durable.answer(reply)
            self._settled(message)
        await call_each(self.pm, "reply_ready", gateway=self, reply=reply)
        return reply

    async def _run_agent(
        self, message: Message, handle: ReplyHandle, history: list[Turn] | None = None
    ) -> Reply:
        if self._agent is None:
            return self._fallback(message, "no_agent", "no agent plugin is enabled")
        if history is None:
            history = await self.store.history(message.conversation_id)
        tools: list[Tool] = []
        for _, offered in await call_each(self.pm, "agent_tools", gateway=self, message=message):
            tools.extend(offered)
        started = time.perf_counter()
        deadline = asyncio.timeout(self.settings.reply_timeout_s)
        try:
            async with deadline:
                reply = await self._agent.respond(
                    AgentRequest(message, history, tools), handle.emit
                )
        except TimeoutError as exc:
            if deadline.expired():
                logger.error(
                    "no reply within {}s for conversation {}",
                    self.settings.reply_timeout_s,
                    message.conversation_id,
                )
                reply = self._fallback(
                    message, "reply_timeout", f"no reply within {self.settings.reply_timeout_s:g}s"
                )
            else:  # the agent's own timeout (an HTTP client's...): not a storage failure
                logger.opt(exception=exc).error(
                    "agent timed out on conversation {}: {}", message.conversation_id, exc
                )
                reply = self._fallback(message, "agent_error", "the agent timed out")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error(
                "agent failed on conversation {}: {}", message.conversation_id, exc
            )
            reply = self._fallback(message, "agent_error", "the agent failed unexpectedly")
        self.metrics.observe_reply(
            message.channel,
            reply.error.code if reply.error else "ok",
            time.perf_counter() - started,
            dict(reply.usage) if reply.usage else None,
        )
        return reply

    def _fallback(self, message: Message, code: str, why: str) -> Reply:
        return Reply(
            message.conversation_id,
            message.channel,
            self.settings.fallback_text,
            message,
            error=ReplyError(code, why),
        )

    async def _deliver(
        self, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult | None:
        return await call_first(
            self.pm,
            "deliver_reply",
            gateway=self,
            reply=reply,
            attempt=attempt,
            progress=progress,
        )


#: Where the app keeps its gateway: ``request.app[GATEWAY]``.
GATEWAY = web.AppKey("gateway", Gateway)
