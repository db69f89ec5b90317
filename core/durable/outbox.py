"""The delivery loop: sends queued replies of durable channels through ``deliver_reply``.

One reply at a time per conversation (so a visitor gets replies in order), conversations
in parallel; transient failures are retried with exponential backoff and jitter.

A reply of a channel no enabled plugin delivers (every ``deliver_reply`` returned ``None``)
is *held*: not retried, not failed, its attempts untouched, until a start with that
channel's plugin enabled sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from core import tracing
from core.contract.delivery import DeliveryProgress, DeliveryResult
from core.contract.events import Reply
from core.durable.sqlite import DurableQueue, PendingDelivery
from core.durable.storage import STORAGE_ERRORS
from core.tracing import Span

#: Pause of a conversation's deliveries while their outcome cannot be recorded (storage
#: failing). Not the pipeline's HELD_PROBE_S: that one holds answering, this one delivery.
RECORD_RETRY_S = 5.0

Deliver = Callable[[Reply, int, DeliveryProgress], Awaitable[DeliveryResult | None]]


class Outbox:
    """Runs while the gateway serves; wakes when a reply is queued or a retry is due."""

    def __init__(
        self,
        queue: DurableQueue,
        deliver: Deliver,
        max_attempts: int,
        base_delay_s: float,
        max_delay_s: float,
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        self._queue = queue
        self._deliver = deliver
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._observe = observe or (lambda channel, outcome: None)
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Outbox rows sent but not yet recorded as delivered (storage failing), by seq.
        self._unrecorded: dict[int, int] = {}
        self._runner: asyncio.Task[None] | None = None
        #: Conversations whose next reply is held, by channel (no plugin delivers it).
        self._held: dict[str, set[str]] = {}
        self.sent = 0
        self.retries = 0
        self.failures = 0

    def use(self, queue: DurableQueue) -> None:
        """Deliver from ``queue`` (a provided durable backend) instead; before start."""
        self._queue = queue

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="outbox")

    def notify(self) -> None:
        """A reply was queued: look for work now."""
        self._wake.set()

    @property
    def in_progress(self) -> int:
        return len(self._busy)

    @property
    def held_channels(self) -> list[str]:
        """Channels whose replies are held because no enabled plugin delivers them."""
        return sorted(self._held)

    async def held(self) -> dict[str, int]:
        """Replies waiting for their channel's plugin to be enabled, by channel."""
        return {
            channel: (await self._queue.stats(channel))["pending_deliveries"]
            for channel in self.held_channels
        }

    def _held_conversations(self) -> set[str]:
        return set().union(*self._held.values()) if self._held else set()

    async def _hold(self, item: PendingDelivery) -> None:
        channel = item.reply.channel
        first = channel not in self._held
        self._held.setdefault(channel, set()).add(item.reply.conversation_id)
        if first:
            pending = (await self._queue.stats(channel))["pending_deliveries"]
            logger.warning(
                "outbox: holding {} undelivered {} repl{}: no enabled plugin delivers channel "
                "{!r}; they are sent when its plugin is enabled again",
                pending, channel, "y" if pending == 1 else "ies", channel,
            )  # fmt: skip

    async def stop(self, grace_s: float) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._max_delay_s)
        delay = min(self._max_delay_s, self._base_delay_s * 2 ** (attempts - 1))
        return delay * random.uniform(0.5, 1.0)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                # A snapshot: an attempt that ends while schedule() reads would otherwise free
                # its conversation and the stale row would be sent a second time.
                due, next_at = await self._queue.schedule(
                    time.time(), self._busy | self._held_conversations()
                )
                for item in due:
                    if item.reply.channel in self._held:
                        await self._hold(item)
                        continue
                    self._busy.add(item.reply.conversation_id)
                    task = asyncio.create_task(self._attempt(item))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception as exc:  # the database went away: try again shortly
                logger.opt(exception=exc).error("outbox: cannot read pending replies: {}", exc)
                next_at = time.time() + 1.0
            timeout = None if next_at is None else max(0.0, next_at - time.time())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation
            # that lands as the wake-up does, and stop() then waited for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _attempt(self, item: PendingDelivery) -> None:
        reply = item.reply
        attributes = None
        if tracing.active().enabled:
            attributes = {
                "eneca.channel": reply.channel,
                "eneca.conversation.id": tracing.hashed(reply.conversation_id),
                "eneca.delivery.attempt": item.attempts + 1,
            }
        # Continues the answer's trace, kept on the outbox row (also after a restart).
        with (
            logger.contextualize(conversation_id=reply.conversation_id),
            tracing.span(
                f"delivery {reply.channel}",
                kind="producer",
                parent=item.trace,
                attributes=attributes,
            ) as span,
        ):
            await self._attempt_in_context(item, span)

    async def _attempt_in_context(self, item: PendingDelivery, span: Span) -> None:
        reply = item.reply
        try:
            if item.seq in self._unrecorded:  # sent, but the database could not say so
                await self._queue.mark_delivered(item.seq, self._unrecorded[item.seq])
                del self._unrecorded[item.seq]
                span.set_attribute("eneca.delivery.outcome", "delivered")
                return
            await self._send(item, span)
        except STORAGE_ERRORS as exc:
            # The outcome could not be written (disk full...). Keep this conversation
            # busy for a while instead of retrying in a tight loop; a reply that went out
            # is remembered so that it is recorded, not sent again, when writes work.
            logger.error(
                "outbox: cannot record a {} delivery for conversation {}: {}; "
                "trying again in {:.0f}s", reply.channel, reply.conversation_id, exc,
                RECORD_RETRY_S,
            )  # fmt: skip
            await asyncio.sleep(RECORD_RETRY_S)
        finally:
            self._busy.discard(reply.conversation_id)
            self._wake.set()

    async def _send(self, item: PendingDelivery, span: Span) -> None:
        reply = item.reply
        attempts = item.attempts + 1
        try:
            progress = DeliveryProgress(
                item.progress, lambda state: self._queue.save_progress(item.seq, state)
            )
            result = await self._deliver(reply, attempts, progress)
        except Exception as exc:
            logger.opt(exception=exc).error(
                "deliver_reply raised for {} conversation {}",
                reply.channel,
                reply.conversation_id,
            )
            result = DeliveryResult.retry(f"{type(exc).__name__}: {exc}")
        if result is None:  # no enabled plugin delivers this channel: hold, spend nothing
            await self._hold(item)
            return
        final = result.outcome == "retry" and attempts >= self._max_attempts
        self._observe(reply.channel, "failed" if final else result.outcome)
        span.set_attribute("eneca.delivery.outcome", "failed" if final else result.outcome)
        if result.outcome != "delivered":
            span.set_error(f"delivery {'failed' if final else result.outcome}")
        if result.outcome == "delivered":
            self.sent += 1
            self._unrecorded[item.seq] = attempts
            await self._queue.mark_delivered(item.seq, attempts)
            del self._unrecorded[item.seq]
        elif result.outcome == "failed" or attempts >= self._max_attempts:
            await self._queue.mark_failed(item.seq, attempts, result.detail)
            self.failures += 1
            logger.error(
                "gave up delivering a {} reply to conversation {} after {} attempt(s): {}",
                reply.channel,
                reply.conversation_id,
                attempts,
                result.detail,
            )
        else:
            delay = self.backoff(attempts, result.retry_after)
            span.set_attribute("eneca.delivery.retry_delay_s", round(delay, 3))
            await self._queue.mark_retry(item.seq, attempts, time.time() + delay, result.detail)
            self.retries += 1
            logger.warning(
                "{} delivery to conversation {} failed (attempt {}): {}; retry in {:.1f}s",
                reply.channel,
                reply.conversation_id,
                attempts,
                result.detail,
                delay,
            )
