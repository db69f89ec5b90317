"""Which durable messages are *kept* and not yet answered, and the three steps of one.

A channel publishing with ``durable=True`` gets its message *kept* (:meth:`Inbox.keep`):
the inbox row is committed before the message is queued, so the 2xx the channel then sends
means "this will be answered, also after a crash". The pipeline *answers* it
(:meth:`Inbox.answer`): the reply goes to the outbox and the inbox row is marked answered,
in one transaction. At start-up, messages kept but never answered are queued again
(:meth:`Inbox.replay`). Terms: docs/architecture.md, "Words".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger

from core import tracing
from core.contract.errors import BusFullError
from core.contract.events import MERGED_IDS, Message, Reply
from core.durable.outbox import Outbox
from core.durable.sqlite import DurableQueue
from core.durable.storage import StorageWatch

H = TypeVar("H")


class Inbox:
    """The kept messages of one gateway, and the queue that keeps them."""

    def __init__(
        self, queue: DurableQueue, storage: StorageWatch, on_answered: Callable[[], None]
    ) -> None:
        self._queue = queue
        self._storage = storage
        self._on_answered = on_answered
        self._kept: set[str] = set()

    def use(self, queue: DurableQueue, outbox: Outbox) -> DurableQueue:
        """Keep messages in ``queue`` (a provided durable backend), which ``outbox``
        delivers from too; before start. Returns ``queue``."""
        self._queue = queue
        outbox.use(queue)
        return queue

    def share(
        self,
        enqueue: Callable[[Message], Awaitable[object]],
        wake_outbox: Callable[[], None],
        call_hook: Callable[..., Awaitable[object]],
    ) -> None:
        """For a backend shared by several processes (one with ``attach``): hand it how
        to queue kept messages taken over from a stopped process, wake the outbox, and
        tell this process's plugins of a session cleared elsewhere (``session_cleared``
        through ``call_hook``)."""
        attach = getattr(self._queue, "attach", None)
        if attach is None:
            return

        async def requeue(messages: list[Message]) -> None:
            for message in messages:
                self._kept.add(message.id)
                await enqueue(message)

        attach(requeue, wake_outbox, lambda event: call_hook("session_cleared", event=event))

    def is_kept(self, message: Message) -> bool:
        """True while ``message`` is kept and its reply is not in the outbox yet."""
        return message.id in self._kept

    async def keep(self, message: Message, enqueue: Callable[..., Awaitable[H]]) -> H | None:
        """Commit ``message`` to the inbox, then ``enqueue()`` it; ``None`` when the
        provider already sent this message id (a duplicate).

        Once committed a message is never taken back: the provider's retry may already
        have been answered 200 as a duplicate (on any node), and then nothing else would
        answer it. When the bus is full it is queued past the bound
        (``enqueue(overflow=True)``) and ``BusFullError`` still raised, so the provider is
        told 503 and slows down; its retry is a duplicate. When the bus is closed (shutting
        down) it stays in the inbox for the next start, or for the node that adopts it.
        """
        with self._storage.writing("keep the message"):
            # The webhook's trace: the answer continues it, also after a restart.
            accepted = await self._queue.accept(message, tracing.traceparent())
        if not accepted:
            logger.info("duplicate {} message {} ignored", message.channel, message.message_id)
            return None
        self._kept.add(message.id)
        try:
            return await enqueue()
        except BusFullError:
            await enqueue(overflow=True)
            raise
        except BaseException:
            self._kept.discard(message.id)  # the next start (or an adopting node) queues it
            raise

    async def replay(self, enqueue: Callable[[Message], Awaitable[object]]) -> int:
        """Queue again, in arrival order, every message kept before the last stop and not
        answered; returns how many."""
        pending = await self._queue.unanswered_traced()
        for message, trace in pending:
            self._kept.add(message.id)
            with tracing.resume(trace):  # the bus answers it in this context
                await enqueue(message)
        if pending:
            logger.info("answering {} message(s) accepted before the last stop", len(pending))
        return len(pending)

    async def answer(self, message: Message, reply: Reply) -> None:
        """Queue ``reply`` in the outbox and mark ``message`` (and any merged into it)
        answered, in one transaction; then wake the outbox."""
        # The answer's trace: each delivery attempt continues it.
        await self._queue.answer(reply, trace=tracing.traceparent())
        self._kept.discard(message.id)
        self._kept.difference_update(message.metadata.get(MERGED_IDS, ()))
        self._on_answered()
