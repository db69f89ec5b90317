"""Load on a cluster of ``eneca-bot serve`` processes for the fault tests: TalkMe visitors
sending webhooks, ``/api/chat`` and ``/api/chat/stream`` clients, each request to a random
node and a failed one sent again to another node (as TalkMe, or nginx with
``proxy_next_upstream``, would); and the checks of what users saw afterwards.

Every chat attempt carries its own text (``thread-q3-a2``: the third question, its second
attempt), so an attempt that failed but was stored shows as itself: a reply the client got
(200) must be stored once, in order; an attempt that failed may be stored at most once.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from tests.support.clients import Outcome, chat, chat_stream, thread_messages, webhook
from tests.support.serve_process import ServeProcess
from tests.support.talkme_fake_api import FakeTalkMe


@dataclass
class Attempt:
    """One request a client sent: to which node, when, and whether it got its reply."""

    thread: str
    text: str
    node: int
    started: float
    ended: float = 0.0
    ok: bool = False


@dataclass
class Acked:
    """A webhook TalkMe got a 200 for: which node kept it and when."""

    visitor: int
    number: int
    node: int
    at: float

    @property
    def reply(self) -> str:
        return f"re: v{self.visitor}-m{self.number}"


@dataclass
class ClusterLoad:
    """TalkMe visitors, chat threads and stream threads sending until :meth:`stop`."""

    nodes: Sequence[ServeProcess]
    visitors: int = 6
    threads: int = 3
    streams: int = 2
    #: Pause of each client between two messages (seconds).
    pause_s: float = 0.05
    acked: dict[int, list[Acked]] = field(default_factory=dict)
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Future[None]] = field(default_factory=list)

    def start(self, session: aiohttp.ClientSession) -> None:
        self._tasks += [
            asyncio.ensure_future(self._visitor(session, v)) for v in range(self.visitors)
        ]
        self._tasks += [
            asyncio.ensure_future(self._chatter(session, f"chat-{n}", chat))
            for n in range(self.threads)
        ]
        self._tasks += [
            asyncio.ensure_future(self._chatter(session, f"stream-{n}", chat_stream))
            for n in range(self.streams)
        ]

    async def stop(self) -> None:
        """Every client finishes the message it is sending (until it is acknowledged)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def _order(self) -> list[int]:
        """A random node first, then the others: where a failed request goes next."""
        first = random.randrange(len(self.nodes))
        rest = [i for i in range(len(self.nodes)) if i != first]
        random.shuffle(rest)
        return [first, *rest]

    async def _visitor(self, session: aiohttp.ClientSession, visitor: int) -> None:
        acked = self.acked.setdefault(visitor, [])
        number = 0
        while not self._stop.is_set():
            number += 1
            node = await self._deliver(session, visitor, number)
            acked.append(Acked(visitor, number, node, time.monotonic()))
            await asyncio.sleep(self.pause_s)

    async def _deliver(self, session: aiohttp.ClientSession, visitor: int, number: int) -> int:
        """Post one webhook until a node answers 200 (TalkMe sends again); which did."""
        text = f"v{visitor}-m{number}"
        for _ in range(100):
            for node in self._order():
                outcome = await webhook(session, self.nodes[node].url, f"visitor-{visitor}",
                                        visitor * 10_000 + number, text)  # fmt: skip
                if outcome.status == 200:
                    return node
            await asyncio.sleep(0.2)
        raise AssertionError(f"no node acknowledged webhook {text}")

    async def _chatter(
        self,
        session: aiohttp.ClientSession,
        thread: str,
        send: Callable[[aiohttp.ClientSession, str, str, str], Awaitable[Outcome]],
    ) -> None:
        attempts = self.attempts.setdefault(thread, [])
        question = 0
        while not self._stop.is_set():
            question += 1
            for tries, node in enumerate(self._order() * 3, start=1):
                text = f"{thread}-q{question}-a{tries}"
                attempt = Attempt(thread, text, node, time.monotonic())
                attempts.append(attempt)
                outcome = await send(session, self.nodes[node].url, thread, text)
                attempt.ended = time.monotonic()
                attempt.ok = _answered(outcome, text)
                if attempt.ok:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(self.pause_s)

    # -- what users saw --------------------------------------------------------------

    def expected_replies(self) -> set[str]:
        return {a.reply for acked in self.acked.values() for a in acked}

    def webhooks_acked(self) -> int:
        return sum(len(acked) for acked in self.acked.values())

    def replies_ok(self) -> int:
        return sum(a.ok for attempts in self.attempts.values() for a in attempts)

    def replies_failed(self) -> int:
        """Chat and stream attempts without their reply (each sent again elsewhere)."""
        return sum(not a.ok for attempts in self.attempts.values() for a in attempts)

    def check_talkme(self, talkme: FakeTalkMe, resends_per_visitor: int = 0) -> int:
        """Every acknowledged webhook's reply sent (confirmed by TalkMe), nothing else,
        each visitor's in order; returns how many were sent twice (at most
        ``resends_per_visitor`` per visitor: the send in flight when a node was killed)."""
        sends = talkme.sent_texts()
        expected = self.expected_replies()
        assert set(sends) == expected, (
            f"missing {sorted(expected - set(sends))}, unexpected {sorted(set(sends) - expected)}"
        )
        for visitor, acked in self.acked.items():
            own = [text for text in sends if text.startswith(f"re: v{visitor}-")]
            assert len(own) - len(set(own)) <= resends_per_visitor, (visitor, own)
            numbers = [int(text.rsplit("-m", 1)[1]) for text in own]
            distinct = [n for i, n in enumerate(numbers) if i == 0 or n != numbers[i - 1]]
            assert distinct == [a.number for a in acked], (visitor, numbers)
        return len(sends) - len(set(sends))

    async def check_threads(self, session: aiohttp.ClientSession, url: str) -> None:
        """Each TalkMe visitor's and each chat thread's stored turns: every reply a client
        got stored once, in the order it was got; nothing stored twice."""
        for visitor, acked in self.acked.items():
            stored = await thread_messages(session, url, f"talkme:visitor-{visitor}")
            asked = [f"v{visitor}-m{a.number}" for a in acked]
            assert [m["content"] for m in stored] == [
                text for question in asked for text in (question, f"re: {question}")
            ], visitor
        for thread, attempts in self.attempts.items():
            contents = [m["content"] for m in await thread_messages(session, url, thread)]
            twice = [text for text, count in Counter(contents).items() if count > 1]
            assert not twice, (thread, twice)
            got = {text for a in attempts if a.ok for text in (a.text, f"re: {a.text}")}
            assert [text for text in contents if text in got] == [
                text for a in attempts if a.ok for text in (a.text, f"re: {a.text}")
            ], thread

    def answered_after(self, node: int, at: float, talkme: FakeTalkMe) -> list[float]:
        """Seconds from ``at`` (the node's kill) until each conversation it was holding
        had its answer: a TalkMe visitor with a message the node had kept and not yet
        answered (until TalkMe confirmed that reply), a chat or stream thread with a
        request in flight on it (until a later attempt of that thread got its reply)."""
        sent_at: dict[str, float] = {}
        for call in talkme.confirmed("send"):
            sent_at.setdefault(call.body["content"]["text"], call.at)
        waits: list[float] = []
        for acked in self.acked.values():
            left = [
                sent_at[a.reply] - at
                for a in acked
                if a.node == node and a.at <= at and sent_at.get(a.reply, at + 1e9) > at
            ]
            if left:
                waits.append(max(left))
        for attempts in self.attempts.values():
            cut = [a for a in attempts if a.node == node and a.started <= at < (a.ended or 1e18)]
            if cut:
                later = [a.ended for a in attempts if a.ok and a.started >= cut[0].started]
                waits.append(min(later) - at)
        return waits


def _answered(outcome: Outcome, text: str) -> bool:
    if outcome.status != 200 or not isinstance(outcome.body, dict):
        return False
    if outcome.events:  # a stream: complete when it ended with its whole reply
        return outcome.body.get("type") == "done" and outcome.body.get("response") == f"re: {text}"
    return bool(outcome.ok and outcome.body.get("response") == f"re: {text}")


def summary(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return (
        f"min {min(values):.1f}s, median {statistics.median(values):.1f}s, max {max(values):.1f}s"
    )
