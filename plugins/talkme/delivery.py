"""Delivering one reply to a TalkMe visitor: the text in parts, then ``finish`` if asked.

Called by the core outbox through ``deliver_reply``; the outbox owns retries, backoff and
persistence. This module only makes the calls, resumes after confirmed parts, and says
whether a failure is worth retrying.
"""

from __future__ import annotations

from loguru import logger

from core import DeliveryProgress, DeliveryResult, Reply
from plugins.talkme.api import FINISH, SEND, ApiOutcome, TalkMeApi
from plugins.talkme.payload import token_of
from plugins.talkme.settings import TalkMeSettings
from plugins.talkme.split import split_text
from plugins.talkme.stats import TalkMeStats

#: ``Reply.actions`` entry that asks for a human operator.
HANDOVER = "handover"


class ReplySender:
    """Sends replies through the API (or, in test mode, logs what it would send)."""

    def __init__(
        self,
        settings: TalkMeSettings,
        api: TalkMeApi | None,
        stats: TalkMeStats,
    ) -> None:
        self._settings = settings
        self._api = api
        self._stats = stats

    async def deliver(
        self, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult:
        """Send what is not sent yet; ``progress`` (kept by the core outbox) records how
        many characters TalkMe confirmed and whether ``finish`` was, so a retry resumes."""
        handover = HANDOVER in reply.actions
        if self._settings.test_mode:
            return self._pretend(reply, handover)
        assert self._api is not None, "talkme is not started"
        message = reply.in_reply_to
        token = token_of(message)
        if token is None:
            self._stats.counters.permanent_failures += 1
            logger.error(
                "talkme reply to conversation {} has no token to send it with; dropped",
                reply.conversation_id,
            )
            return DeliveryResult.failed("the message carries no TalkMe token")
        sent_chars = progress.get("sent_chars", 0)
        sent_now = 0
        finish = handover and not progress.get("finished", False)
        parts = split_text(reply.text[sent_chars:], self._settings.max_message_chars)
        for number, part in enumerate(parts, 1):
            if part.strip():
                outcome = await self._api.send(token, part)
                self._stats.api.observe(outcome, SEND)
                if not outcome.ok:
                    return self._failure(SEND, outcome, reply, attempt)
                self._stats.counters.messages_sent += 1
                sent_now += 1
            sent_chars += len(part)
            if number < len(parts) or finish:
                # After the last call, "delivered" is written next and says the same.
                await progress.save(sent_chars=sent_chars)
        if finish:
            outcome = await self._api.finish(token, self._settings.operator_code)
            self._stats.api.observe(outcome, FINISH)
            if not outcome.ok:
                return self._failure(FINISH, outcome, reply, attempt)
            await progress.save(finished=True)
            self._stats.counters.handovers += 1
            logger.info("talkme conversation {} handed to an operator", reply.conversation_id)
        if not reply.text.strip() and not handover:
            logger.warning("talkme reply to {} is empty; nothing sent", reply.conversation_id)
        self._stats.counters.replies_sent += 1
        return DeliveryResult.delivered(f"{sent_now} message(s) sent on attempt {attempt}")

    def _failure(
        self, method: str, outcome: ApiOutcome, reply: Reply, attempt: int
    ) -> DeliveryResult:
        counters = self._stats.counters
        counters.send_failures += 1
        detail = outcome.describe(method)
        if outcome.transient:
            counters.retries += 1
            return DeliveryResult.retry(detail, retry_after=outcome.retry_after)
        counters.permanent_failures += 1
        logger.error(
            "talkme rejected {} for conversation {} (attempt {}), not retrying: error code {}: {}",
            method,
            reply.conversation_id,
            attempt,
            outcome.code or outcome.status,
            outcome.detail or "no description",
        )
        return DeliveryResult.failed(detail)

    def _pretend(self, reply: Reply, handover: bool) -> DeliveryResult:
        """Test mode: log each call that would be made (never the token) and count it."""
        parts = split_text(reply.text, self._settings.max_message_chars)
        for index, part in enumerate(parts, 1):
            if part.strip():
                self._stats.counters.test_mode_calls += 1
                logger.info(
                    "talkme test mode: would call {} for conversation {} (part {}/{}, {} chars)",
                    SEND,
                    reply.conversation_id,
                    index,
                    len(parts),
                    len(part),
                )
        if handover:
            self._stats.counters.test_mode_calls += 1
            logger.info(
                "talkme test mode: would call {} with code {} for conversation {}",
                FINISH,
                self._settings.operator_code,
                reply.conversation_id,
            )
        self._stats.counters.replies_sent += 1
        return DeliveryResult.delivered("test mode: nothing sent")
