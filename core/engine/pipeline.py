"""The pipeline: how one message is answered, in its conversation's lane.

Store the user turn (and read the recent window), fire ``message_received``, gather tools
(``agent_tools``), run the agent under ``REPLY_TIMEOUT_S`` (chunks go to the handle), store
the assistant turn when the reply succeeded (a fallback is not remembered), answer a *kept*
durable message through the inbox, fire ``reply_ready``.

A kept message is answered whatever happens: while storage fails it is *held* (its lane
waits and probes every :data:`HELD_PROBE_S`), and any other failure answers it with the
fallback text. Terms: docs/architecture.md, "Words".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from core import tracing
from core.config.settings import CoreSettings
from core.contract.agent import Agent, AgentRequest, Tool
from core.contract.errors import StorageUnavailable
from core.contract.events import MERGED_IDS, Message, Reply, ReplyError
from core.contract.store import ConversationStore, Turn
from core.durable.inbox import Inbox
from core.durable.storage import StorageWatch
from core.engine.bus import ReplyHandle
from core.tracing import genai

#: How often a conversation held by a storage failure checks whether writes work again.
#: Not the outbox's RECORD_RETRY_S: that one pauses delivery, this one answering.
HELD_PROBE_S = 1.0

#: ``gen_ai.agent.name`` of the agent's span (whichever plugin provides the agent).
AGENT_NAME = "eneca-bot"

#: Calls a hook by name for the gateway (``core.plugins.call_hook``, gateway bound).
CallHook = Callable[..., Awaitable[Any]]
#: Called after each reply: channel, outcome ("ok" or the error code), seconds, usage.
ObserveReply = Callable[[str, str, float, dict[str, int] | None], None]


class Pipeline:
    """Answers messages for one gateway; the bus calls :meth:`answer` in each lane."""

    def __init__(
        self,
        settings: CoreSettings,
        call_hook: CallHook,
        inbox: Inbox,
        storage: StorageWatch,
        observe_reply: ObserveReply | None = None,
    ) -> None:
        self._settings = settings
        self._hook = call_hook
        self._inbox = inbox
        self._storage = storage
        self._observe = observe_reply or (lambda channel, outcome, seconds, usage: None)
        self.store: ConversationStore | None = None
        self.agent: Agent | None = None

    async def answer(self, message: Message, handle: ReplyHandle) -> Reply:
        """The reply to ``message``; raises what failed, unless the message is kept."""
        with (
            logger.contextualize(conversation_id=message.conversation_id),
            tracing.span("bus.answer", attributes=self._span_attributes(message, handle)),
        ):
            while True:
                try:
                    with self._storage.writing("store the conversation"):
                        return await self._answer_in_context(message, handle)
                except StorageUnavailable:
                    if not self._inbox.is_kept(message):
                        raise
                    # Kept (200 sent): hold this conversation's lane and answer again
                    # once the disk takes writes, so its later messages cannot overtake
                    # it. At shut-down it stays in the inbox for the next start.
                    await self._until_storage_works()
                except Exception as exc:
                    if not self._inbox.is_kept(message):
                        raise
                    # A kept message must be answered, or it waits for the next restart
                    # and fails again there: the visitor gets the fallback instead.
                    logger.opt(exception=exc).error(
                        "answering a kept {} message failed; sending the fallback text",
                        message.channel,
                    )
                    reply = self.fallback(message, "internal_error", "the message failed")
                    with self._storage.writing("queue the reply"):
                        await self._inbox.answer(message, reply)
                    return reply

    def _span_attributes(self, message: Message, handle: ReplyHandle) -> dict[str, Any] | None:
        """What the message's span says (ids hashed, no text); ``None`` when not traced."""
        if not tracing.active().enabled:
            return None
        waited = asyncio.get_running_loop().time() - handle.arrived
        attributes: dict[str, Any] = {
            "eneca.channel": message.channel,
            "eneca.conversation.id": tracing.hashed(message.conversation_id),
            "eneca.message.durable": self._inbox.is_kept(message),
            "eneca.message.stream": message.stream,
            # Behind earlier messages of the conversation, or debouncing.
            "eneca.bus.lane_wait_s": round(max(waited, 0.0), 6),
        }
        merged = message.metadata.get(MERGED_IDS)
        if merged:
            attributes["eneca.message.merged"] = len(merged) + 1
        return attributes

    async def _until_storage_works(self) -> None:
        while self._storage.failure is not None:
            await asyncio.sleep(HELD_PROBE_S)
            await self._storage.probe()
        logger.info("storage works again: answering the message held by the failure")

    async def _answer_in_context(self, message: Message, handle: ReplyHandle) -> Reply:
        store = self.store
        assert store is not None, "the gateway has not started"
        turn = Turn.of_message(message)
        history: list[Turn] | None = None
        # One step when the store offers it (core.contract.store.AppendsWithHistory).
        append_and_history = getattr(store, "append_and_history", None)
        if self.agent is not None and append_and_history is not None:
            with tracing.span("store.append_history") as span:
                history = await append_and_history(message.conversation_id, turn)
                span.set_attribute("eneca.store.turns", len(history))
        else:
            with tracing.span("store.append"):
                await store.append(message.conversation_id, turn)
        await self._hook("message_received", message=message)
        reply = await self._run_agent(message, handle, history)
        if reply.success:
            with tracing.span("store.append"):
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
        if self._inbox.is_kept(message):
            await self._inbox.answer(message, reply)
        await self._hook("reply_ready", reply=reply)
        return reply

    async def _run_agent(
        self, message: Message, handle: ReplyHandle, history: list[Turn] | None = None
    ) -> Reply:
        agent = self.agent
        if agent is None:
            return self.fallback(message, "no_agent", "no agent plugin is enabled")
        if history is None:
            assert self.store is not None
            with tracing.span("store.history") as span:
                history = await self.store.history(message.conversation_id)
                span.set_attribute("eneca.store.turns", len(history))
        tools: list[Tool] = []
        for _, offered in await self._hook("agent_tools", message=message):
            tools.extend(offered)
        timeout_s = self._settings.reply_timeout_s
        started = time.perf_counter()
        deadline = asyncio.timeout(timeout_s)
        run = genai.agent_run(AGENT_NAME, conversation_id=message.conversation_id)
        try:
            async with deadline:
                with run as span:
                    reply = await agent.respond(AgentRequest(message, history, tools), handle.emit)
                    if reply.error is not None:
                        span.set_attribute("error.type", reply.error.code)
        except TimeoutError as exc:
            if deadline.expired():
                logger.error(
                    "no reply within {}s for conversation {}", timeout_s, message.conversation_id
                )
                reply = self.fallback(message, "reply_timeout", f"no reply within {timeout_s:g}s")
            else:  # the agent's own timeout (an HTTP client's...): not a storage failure
                logger.opt(exception=exc).error(
                    "agent timed out on conversation {}: {}", message.conversation_id, exc
                )
                reply = self.fallback(message, "agent_error", "the agent timed out")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error(
                "agent failed on conversation {}: {}", message.conversation_id, exc
            )
            reply = self.fallback(message, "agent_error", "the agent failed unexpectedly")
        self._observe(
            message.channel,
            reply.error.code if reply.error else "ok",
            time.perf_counter() - started,
            dict(reply.usage) if reply.usage else None,
        )
        return reply

    def fallback(self, message: Message, code: str, why: str) -> Reply:
        """The configured fallback text as the reply to ``message``, with ``code``."""
        return Reply(
            message.conversation_id,
            message.channel,
            self._settings.fallback_text,
            message,
            error=ReplyError(code, why),
        )
