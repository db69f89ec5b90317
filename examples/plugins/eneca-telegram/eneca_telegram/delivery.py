"""Delivering one reply to a Telegram chat: ``sendMessage`` per part, resuming after the
parts Telegram already confirmed. The core outbox owns retries, backoff, persistence and
the record of confirmed parts (``progress``); this module makes the calls and says whether
a failure is worth retrying. Each ``sendMessage`` call is a tracing span
(``telegram.send_message``) under the core's span of the delivery attempt."""

from __future__ import annotations

from typing import Any

from loguru import logger

from core import DeliveryProgress, DeliveryResult, Gateway, Reply
from eneca_telegram.api import SEND_MESSAGE, BotApi
from eneca_telegram.split import split_text


class ReplySender:
    """Sends replies of the ``telegram`` channel."""

    def __init__(self, api: BotApi, max_chars: int, gateway: Gateway) -> None:
        self._api = api
        self._max_chars = max_chars
        self._gateway = gateway

    async def deliver(
        self, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult:
        message = reply.in_reply_to
        if message.chat_id is None:
            return DeliveryResult.failed("the message has no chat id to answer in")
        parts = [part for part in split_text(reply.text, self._max_chars) if part.strip()]
        if not parts:
            logger.warning("telegram reply to {} is empty; nothing sent", reply.conversation_id)
            return DeliveryResult.delivered("empty reply: nothing sent")
        confirmed = progress.get("parts_sent", 0)
        for index in range(confirmed, len(parts)):
            # A span per Bot API call (free when tracing is off): no text, no chat id.
            with self._gateway.span(
                "telegram.send_message",
                kind="client",
                attributes={"telegram.part": index + 1, "telegram.parts": len(parts)},
            ) as span:
                outcome = await self._api.call(SEND_MESSAGE, self._payload(reply, parts[index]))
                span.set_attribute("http.response.status_code", outcome.status)
                if not outcome.ok:
                    span.set_error(f"HTTP {outcome.status}" if outcome.status else "no response")
            if not outcome.ok:
                detail = outcome.describe(SEND_MESSAGE)
                if outcome.transient:
                    return DeliveryResult.retry(detail, retry_after=outcome.retry_after)
                logger.error(
                    "telegram refused a reply to {} (attempt {}), not retrying: {}",
                    reply.conversation_id,
                    attempt,
                    detail,
                )
                return DeliveryResult.failed(detail)
            await progress.save(parts_sent=index + 1)
        return DeliveryResult.delivered(f"{len(parts) - confirmed} message(s) sent")

    @staticmethod
    def _payload(reply: Reply, text: str) -> dict[str, Any]:
        message = reply.in_reply_to
        payload: dict[str, Any] = {"chat_id": int(message.chat_id or 0), "text": text}
        thread = message.metadata.get("message_thread_id")
        if thread is not None:
            payload["message_thread_id"] = thread
        return payload
