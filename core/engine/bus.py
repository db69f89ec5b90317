"""The message bus: one ordered lane per conversation, lanes concurrent, bounded overall.

:class:`MessageBus` is the interface plugins and the gateway see; :class:`InProcessBus` is
the embedded implementation. A Redis Streams bus can replace it behind the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from loguru import logger

from core.contract.errors import BusClosedError, BusFullError, EnecaError
from core.contract.events import MERGED_IDS, Message, Reply

_END = object()


class ReplyHandle:
    """What ``publish`` returns: await the reply, iterate its chunks, or cancel it."""

    __slots__ = (
        "_chunks",
        "_context",
        "_future",
        "_task",
        "arrived",
        "cancelled",
        "debounce_s",
        "message",
    )

    def __init__(self, message: Message, debounce_s: float = 0.0) -> None:
        self.message = message
        self.debounce_s = debounce_s
        self.arrived = asyncio.get_running_loop().time()
        # The publisher's context (request id...) so the answer's log lines carry it.
        self._context = contextvars.copy_context()
        self._future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._chunks: asyncio.Queue[Any] | None = asyncio.Queue() if message.stream else None
        self._task: asyncio.Task[None] | None = None
        self.cancelled = False

    async def reply(self) -> Reply:
        """The final reply; raises what the handler raised, or ``CancelledError``."""
        return await asyncio.shield(self._future)

    async def chunks(self) -> AsyncIterator[str]:
        """Text deltas as the agent produces them (only for ``message.stream``)."""
        if self._chunks is None:
            return
        while True:
            item = await self._chunks.get()
            if item is _END:
                return
            yield item

    async def emit(self, text: str) -> None:
        """Called by the pipeline for each delta."""
        if self._chunks is not None and text:
            self._chunks.put_nowait(text)

    def cancel(self) -> None:
        """Stop answering this message (the asking client went away)."""
        self.cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def done(self) -> bool:
        return self._future.done()

    def _finish(self, reply: Reply | None, error: BaseException | None) -> None:
        """Resolve the handle once (a reply or an error); later calls do nothing."""
        if self._future.done():
            return
        if error is not None:
            self._future.set_exception(error)
            self._future.exception()  # mark retrieved: nobody may be awaiting
        else:
            assert reply is not None
            self._future.set_result(reply)
        if self._chunks is not None:
            self._chunks.put_nowait(_END)


#: What the bus calls in a lane to answer one message (the pipeline's ``answer``).
AnswerMessage = Callable[[Message, ReplyHandle], Awaitable[Reply]]


def merge(handles: list[ReplyHandle]) -> Message:
    """One message standing for several debounced ones: the texts joined by newlines,
    the newest message's ids and metadata, the older ids under ``MERGED_IDS``."""
    if len(handles) == 1:
        return handles[0].message
    messages = [handle.message for handle in handles]
    newest = messages[-1]
    return replace(
        newest,
        text="\n".join(message.text for message in messages),
        metadata={**newest.metadata, MERGED_IDS: [message.id for message in messages[:-1]]},
    )


class MessageBus(Protocol):
    """Ordered, bounded delivery of messages to the gateway's handler."""

    async def publish(
        self, message: Message, debounce_s: float = 0.0, *, overflow: bool = False
    ) -> ReplyHandle:
        """Queue ``message`` in its conversation's lane; raises ``BusFullError`` or
        ``BusClosedError`` when it cannot be taken. With ``debounce_s`` the lane waits
        until the conversation has been quiet that long and answers the messages that
        arrived meanwhile together, as one message. ``overflow`` queues it even past the
        bound (messages already acknowledged, replayed after a restart)."""

    async def drain(self, grace_s: float) -> dict[str, int]:
        """Stop taking messages and let queued ones finish within ``grace_s``."""

    def stats(self) -> dict[str, int]:
        """Lanes, queued and in-flight counts."""


class InProcessBus:
    """asyncio implementation: a deque and a worker task per busy conversation."""

    def __init__(
        self,
        handler: AnswerMessage,
        max_in_flight: int = 1000,
        full_policy: str = "wait",
        publish_timeout_s: float = 5.0,
    ) -> None:
        self._handler = handler
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_in_flight = max_in_flight
        self._full_policy = full_policy
        self._publish_timeout_s = publish_timeout_s
        self._lanes: dict[str, deque[ReplyHandle]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self._in_flight = 0
        #: Messages queued past the bound (``overflow=True``); they return no slot.
        self._borrowed = 0
        self.processed = 0
        self.failed = 0

    async def publish(
        self, message: Message, debounce_s: float = 0.0, *, overflow: bool = False
    ) -> ReplyHandle:
        if self._closed:
            raise BusClosedError("the gateway is shutting down")
        if overflow and self._slots.locked():
            self._borrowed += 1
        elif self._slots.locked():
            if self._full_policy == "reject" or self._publish_timeout_s == 0:
                raise BusFullError(f"{self._max_in_flight} messages already in flight")
            try:
                async with asyncio.timeout(self._publish_timeout_s):  # not wait_for (3.11)
                    await self._slots.acquire()
            except TimeoutError:
                raise BusFullError(
                    f"{self._max_in_flight} messages in flight for {self._publish_timeout_s}s"
                ) from None
        else:
            await self._slots.acquire()
        if self._closed:
            self._release()
            raise BusClosedError("the gateway is shutting down")
        handle = ReplyHandle(message, debounce_s)
        self._in_flight += 1
        lane = self._lanes.get(message.conversation_id)
        if lane is None:
            lane = self._lanes[message.conversation_id] = deque()
            lane.append(handle)
            self._workers[message.conversation_id] = asyncio.create_task(
                self._run_lane(message.conversation_id, lane)
            )
        else:
            lane.append(handle)
        return handle

    async def _run_lane(self, conversation_id: str, lane: deque[ReplyHandle]) -> None:
        try:
            while lane:
                handle = lane[0]
                batch = [handle]
                if handle.cancelled:
                    handle._finish(None, asyncio.CancelledError())
                else:
                    if handle.debounce_s > 0:
                        batch = await self._settle(lane)
                        if not batch:  # the head was cancelled while the lane waited
                            continue
                    task = asyncio.create_task(
                        self._process(merge(batch), batch), context=batch[-1]._context
                    )
                    for member in batch:
                        member._task = task
                    await asyncio.wait((task,))
                    for member in batch:  # cancelled before its first step: never finished
                        member._finish(None, asyncio.CancelledError())
                for _ in batch:
                    lane.popleft()
                    self._in_flight -= 1
                    self._release()
        finally:
            for handle in lane:  # only when the lane itself was cancelled at shut-down
                if handle._task is not None:
                    handle._task.cancel()
                handle._finish(None, asyncio.CancelledError())
                self._in_flight -= 1
                self._release()
            lane.clear()
            self._lanes.pop(conversation_id, None)
            self._workers.pop(conversation_id, None)

    def _release(self) -> None:
        if self._borrowed:
            self._borrowed -= 1
        else:
            self._slots.release()

    async def _settle(self, lane: deque[ReplyHandle]) -> list[ReplyHandle]:
        """Wait for a quiet period, then take the debounced messages at the lane's head.

        A visitor who never pauses is answered after ten debounce periods at the latest.
        """
        loop = asyncio.get_running_loop()
        head = lane[0]
        deadline = head.arrived + 10 * head.debounce_s
        while True:
            quiet_at = min(lane[-1].arrived + head.debounce_s, deadline)
            if quiet_at <= loop.time():
                break
            await asyncio.sleep(quiet_at - loop.time())
        batch = []
        for handle in lane:
            if handle.debounce_s <= 0 or handle.cancelled:
                break
            batch.append(handle)
        return batch

    async def _process(self, message: Message, handles: list[ReplyHandle]) -> None:
        target = handles[-1]  # chunks go to the newest asker
        try:
            reply = await self._handler(message, target)
        except asyncio.CancelledError as exc:
            for handle in handles:
                handle._finish(None, exc)
            raise
        except Exception as exc:
            self.failed += 1
            # The gateway's own errors (storage unavailable...) are expected: one line.
            logger.opt(exception=None if isinstance(exc, EnecaError) else exc).error(
                "handler failed for conversation {}: {}", message.conversation_id, exc
            )
            for handle in handles:
                handle._finish(None, exc)
        else:
            self.processed += 1
            for handle in handles:
                handle._finish(reply, None)

    async def drain(self, grace_s: float) -> dict[str, int]:
        self._closed = True
        workers = list(self._workers.values())
        if not workers:
            return {"finished": 0, "cancelled": 0}
        done, pending = await asyncio.wait(workers, timeout=grace_s)
        for worker in pending:
            worker.cancel()
        for worker in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if pending:
            logger.warning(
                "shut-down: {} conversation(s) cancelled after {}s", len(pending), grace_s
            )
        return {"finished": len(done), "cancelled": len(pending)}

    def stats(self) -> dict[str, int]:
        return {
            "lanes": len(self._lanes),
            "in_flight": self._in_flight,
            # Every lane answers one message at a time; the rest of what it holds waits.
            "queued": self._in_flight - len(self._lanes),
            "capacity": self._max_in_flight,
            "processed": self.processed,
            "failed": self.failed,
        }
