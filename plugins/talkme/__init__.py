"""The TalkMe channel: visitors of the TalkMe online-chat widget talk to the agent.

TalkMe posts each visitor message to ``POST /webhook/talkme``; the plugin records it in
the gateway's durable inbox and answers 200 at once. The agent's reply reaches the visitor
through the TalkMe bot API (``customBot/send``, split when long), delivered by the core
outbox through :meth:`TalkMePlugin.deliver_reply`, in order per visitor and retried on
transient failures. The agent gets a ``transfer_to_operator`` tool; using it ends the bot
stage with ``customBot/finish``. See ``../shared/talkme-protocol.md`` for the protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from loguru import logger

from core import (
    Check,
    DeliveryProgress,
    DeliveryResult,
    Gateway,
    Message,
    Reply,
    SessionCleared,
    Tool,
    ToolResult,
    dumps,
    hookimpl,
)
from plugins.talkme.api import TYPING, TalkMeApi
from plugins.talkme.delivery import HANDOVER, ReplySender
from plugins.talkme.payload import CHANNEL, token_of
from plugins.talkme.routes import TalkMeRoutes
from plugins.talkme.settings import TalkMeSettings
from plugins.talkme.stats import TalkMeStats, health_report

__all__ = ["TalkMePlugin", "TalkMeSettings"]

TRANSFER_TOOL = "transfer_to_operator"


async def _transfer_to_operator(arguments: Mapping[str, Any], message: Message) -> ToolResult:
    return ToolResult("The visitor will be transferred to an operator.", action=HANDOVER)


class TalkMePlugin:
    """One TalkMe channel per gateway; all state lives on the instance."""

    def __init__(self) -> None:
        self.stats = TalkMeStats()
        self._settings: TalkMeSettings | None = None
        self._session: aiohttp.ClientSession | None = None
        self._api: TalkMeApi | None = None
        self._sender: ReplySender | None = None
        self._typing: dict[str, set[asyncio.Task[None]]] = {}

    @property
    def settings(self) -> TalkMeSettings:
        assert self._settings is not None, "talkme settings are not loaded"
        return self._settings

    # -- set-up -------------------------------------------------------------------------

    @hookimpl
    def settings_model(self) -> type[TalkMeSettings]:
        return TalkMeSettings

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[web.RouteDef]:
        self._settings = gateway.settings_for(TalkMeSettings)
        return TalkMeRoutes(self, gateway).definitions()

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        settings = self._settings = gateway.settings_for(TalkMeSettings)
        if settings.test_mode:
            logger.warning("TALKME_TEST_MODE is on: nothing will be sent to TalkMe")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s),
            headers={"User-Agent": f"eneca-bot/{gateway.version}"},
            json_serialize=dumps,
        )
        self._api = TalkMeApi(settings.api_url, self._session, settings.request_timeout_s)
        self._sender = ReplySender(settings, self._api, self.stats)
        try:
            yield
        finally:
            tasks = [task for tasks in self._typing.values() for task in tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._typing.clear()
            await self._session.close()

    # -- while a message is answered ------------------------------------------------------

    @hookimpl
    async def message_received(self, gateway: Gateway, message: Message) -> None:
        """Show "typing" while the agent works: best effort, never retried, not waited
        on for more than ``TALKME_TYPING_WAIT_S``."""
        settings = self.settings
        if message.channel != CHANNEL or settings.typing_ttl_s == 0:
            return
        if settings.test_mode:
            self.stats.counters.test_mode_calls += 1
            logger.info(
                "talkme test mode: would call {} (ttl {}s) for conversation {}",
                TYPING,
                settings.typing_ttl_s,
                message.conversation_id,
            )
            return
        token = token_of(message)
        if token is None or self._api is None:
            return
        gateway.mask_secrets(token)  # replayed after a restart: not seen by the webhook
        task = asyncio.create_task(self._show_typing(token, message.conversation_id))
        tasks = self._typing.setdefault(message.conversation_id, set())
        tasks.add(task)
        task.add_done_callback(lambda done: self._forget_typing(message.conversation_id, done))
        if settings.typing_wait_s > 0:
            await asyncio.wait({task}, timeout=settings.typing_wait_s)

    async def _show_typing(self, token: str, conversation_id: str) -> None:
        assert self._api is not None
        outcome = await self._api.simulate_typing(token, self.settings.typing_ttl_s)
        self.stats.api.observe(outcome, TYPING)
        if outcome.ok:
            self.stats.counters.typing_sent += 1
        else:
            self.stats.counters.typing_failed += 1
            logger.info(
                "talkme typing indicator for {} failed: {}",
                conversation_id,
                outcome.describe(TYPING),
            )

    def _forget_typing(self, conversation_id: str, task: asyncio.Task[None]) -> None:
        tasks = self._typing.get(conversation_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self._typing.pop(conversation_id, None)

    @hookimpl
    def agent_tools(self, gateway: Gateway, message: Message) -> list[Tool] | None:
        if message.channel != CHANNEL:
            return None
        return [
            Tool(
                name=TRANSFER_TOOL,
                description=(
                    "Hand the conversation to a human operator. Use it when the visitor asks "
                    "for a person, or when you cannot help."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "reason": {"type": "string", "description": "why, in a few words"}
                    },
                    "required": [],
                },
                handler=_transfer_to_operator,
            )
        ]

    @hookimpl(trylast=True)
    async def deliver_reply(
        self, gateway: Gateway, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult | None:
        if reply.channel != CHANNEL:
            return None
        if self._sender is None:
            return DeliveryResult.retry("the talkme channel is not started")
        gateway.mask_secrets(token_of(reply.in_reply_to))
        with logger.contextualize(conversation_id=reply.conversation_id):
            return await self._sender.deliver(reply, attempt, progress)

    # -- observers --------------------------------------------------------------------------

    @hookimpl
    async def health_check(self, gateway: Gateway) -> Check:
        try:
            report = await health_report(gateway, self.settings, self.stats)
        except Exception as exc:
            logger.warning("talkme health check failed: {}", exc)
            return Check(CHANNEL, False, {"error": type(exc).__name__})
        # An unreachable TalkMe API does not make the gateway unhealthy: webhooks are
        # still accepted and kept, and replies wait in the outbox.
        return Check(CHANNEL, True, report.model_dump(exclude={"enabled"}))

    @hookimpl
    async def session_cleared(self, gateway: Gateway, event: SessionCleared) -> None:
        if event.channel not in (None, CHANNEL):
            return
        if event.conversation_id is None and event.channel is None:
            return
        for conversation_id, tasks in list(self._typing.items()):
            if event.conversation_id in (None, conversation_id):
                for task in tasks:
                    task.cancel()
