"""A Telegram channel for eneca-bot, in webhook mode.

Telegram posts each update to ``POST /webhook/telegram``; the plugin keeps text messages
in the gateway's durable inbox (deduplicated on ``update_id``) and answers 200 at once.
The agent's reply goes back through ``sendMessage`` from the ``deliver_reply`` hook,
delivered by the core outbox in order per chat, retried on 429/5xx, split past 4096
characters. ``eneca-bot telegram set-webhook --url https://...`` registers the webhook.

Installed with ``pip install eneca-telegram`` (or ``-e`` this folder), found through its
``eneca_bot.plugins`` entry point, enabled with ``PLUGINS=...,telegram``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from loguru import logger

from core import Check, DeliveryProgress, DeliveryResult, Gateway, Message, Reply, hookimpl
from eneca_telegram.api import SEND_CHAT_ACTION, BotApi
from eneca_telegram.cli import add_commands
from eneca_telegram.delivery import ReplySender
from eneca_telegram.routes import WebhookRoutes
from eneca_telegram.settings import TelegramSettings
from eneca_telegram.update import CHANNEL

__all__ = ["CHANNEL", "TelegramPlugin", "TelegramSettings"]
__version__ = "0.1.0"


class TelegramPlugin:
    """One Telegram bot per gateway; all state lives on the instance."""

    def __init__(self) -> None:
        self._api: BotApi | None = None
        self._sender: ReplySender | None = None
        self._settings: TelegramSettings | None = None
        self._typing: set[asyncio.Task[None]] = set()

    # -- set-up -------------------------------------------------------------------------

    @hookimpl
    def settings_model(self) -> type[TelegramSettings]:
        return TelegramSettings

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[web.RouteDef]:
        return WebhookRoutes(gateway).definitions()

    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction) -> None:
        add_commands(subparsers)

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        settings = self._settings = gateway.settings_for(TelegramSettings)
        token = settings.bot_token.get_secret_value()
        gateway.mask_secrets(token)  # it is in every Bot API URL: mask it in any log line
        if settings.webhook_secret is None:
            logger.warning(
                "TELEGRAM_WEBHOOK_SECRET is not set: anyone who knows the URL can post to "
                "/webhook/telegram"
            )
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s),
            headers={"User-Agent": f"eneca-bot/{gateway.version}"},
        )
        self._api = BotApi(session, settings.api_url, token)
        self._sender = ReplySender(self._api, settings.max_message_chars, gateway)
        try:
            yield
        finally:
            for task in self._typing:
                task.cancel()
            await asyncio.gather(*self._typing, return_exceptions=True)
            self._sender = self._api = None
            await session.close()

    # -- while a message is answered ------------------------------------------------------

    @hookimpl
    async def message_received(self, gateway: Gateway, message: Message) -> None:
        """Show "typing..." while the agent works: best effort, never retried, waited on
        for at most ``TELEGRAM_TYPING_WAIT_S``."""
        if message.channel != CHANNEL or self._api is None or self._settings is None:
            return
        task = asyncio.create_task(self._show_typing(self._api, message))
        self._typing.add(task)
        task.add_done_callback(self._typing.discard)
        if self._settings.typing_wait_s > 0:
            await asyncio.wait({task}, timeout=self._settings.typing_wait_s)

    @staticmethod
    async def _show_typing(api: BotApi, message: Message) -> None:
        payload = {"chat_id": int(message.chat_id or 0), "action": "typing"}
        outcome = await api.call(SEND_CHAT_ACTION, payload)
        if not outcome.ok:
            logger.info(
                "telegram typing for {} failed: {}",
                message.conversation_id,
                outcome.describe(SEND_CHAT_ACTION),
            )

    @hookimpl
    async def deliver_reply(
        self, gateway: Gateway, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult | None:
        if reply.channel != CHANNEL:
            return None
        if self._sender is None:
            return DeliveryResult.retry("the telegram channel is not started")
        return await self._sender.deliver(reply, attempt, progress)

    # -- observers --------------------------------------------------------------------------

    @hookimpl
    async def health_check(self, gateway: Gateway) -> Check:
        figures = await gateway.delivery_stats(CHANNEL)
        return Check(CHANNEL, self._api is not None, figures)
