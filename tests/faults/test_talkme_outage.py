"""Fault: the TalkMe API down for a while (connections refused, then 503s), then back.

Visitors keep writing while it is down; every reply waits in the outbox and is delivered
once TalkMe answers again: all of them, in order per visitor, none twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.support.clients import eventually, get_json, webhook
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess, base_env
from tests.support.talkme_fake_api import FakeTalkMe, Scripted

VISITORS = 4
MESSAGES = 5
REFUSED_S = 1.5
UNAVAILABLE = 6  # 503 answers after it is back


async def test_talkme_down_then_503_then_back_every_reply_delivered_once_in_order(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe
) -> None:
    await talkme.stop()  # nothing listens on its port: connection refused
    env = base_env(tmp_path, OPENAI_BASE_URL=llm.base_url, TALKME_API_URL=talkme.url)
    server = ServeProcess(tmp_path, env)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for number in range(1, MESSAGES + 1):
                for visitor in range(VISITORS):
                    outcome = await webhook(
                        session, server.url, f"out-{visitor}", visitor * 100 + number,
                        f"o{visitor}-m{number}",
                    )  # fmt: skip
                    assert outcome.status == 200, outcome
            stats_url = f"{server.url}/webhook/talkme/stats"

            async def all_answered_and_waiting() -> bool:
                status, stats = await get_json(session, stats_url)
                assert status == 200, stats
                return stats["totals"]["pending_deliveries"] >= VISITORS * MESSAGES

            # Every reply is written while TalkMe refuses connections; on a loaded machine the
            # model's answers can take longer than a fixed pause, so wait for them, then keep
            # TalkMe down a little longer so deliveries really fail for a while.
            await eventually(all_answered_and_waiting, 60, "every reply queued in the outbox")
            await asyncio.sleep(REFUSED_S)
            status, stats = await get_json(session, stats_url)
            assert status == 200, stats
            down = stats["totals"]
            assert (down["pending_deliveries"], down["delivered"]) == (VISITORS * MESSAGES, 0)
            assert stats["api"]["reachable"] is False

            talkme.script("send", *[Scripted(503)] * UNAVAILABLE)
            await talkme.start()  # back on the same port, answering 503 first
            back_at = time.monotonic()
            expected = [f"re: o{v}-m{n}" for n in range(1, MESSAGES + 1) for v in range(VISITORS)]
            await eventually(
                lambda: len(talkme.sent_texts()) >= len(expected), 20, "every reply delivered"
            )
            recovered_s = time.monotonic() - back_at
            await asyncio.sleep(0.5)  # time for a wrong second send to show up
            status, stats = await get_json(session, f"{server.url}/webhook/talkme/stats")
    finally:
        assert await server.stop() == 0, server.stderr()

    texts = talkme.sent_texts()
    assert sorted(texts) == sorted(expected)  # all of them, none twice
    for visitor in range(VISITORS):
        own = [text for text in texts if text.startswith(f"re: o{visitor}-")]
        assert own == [f"re: o{visitor}-m{n}" for n in range(1, MESSAGES + 1)]  # in order
    assert len(talkme.calls_to("send")) - len(texts) >= UNAVAILABLE  # the 503s were retried
    after = stats["totals"]
    assert (after["pending_deliveries"], after["delivered"], after["failed"]) == (0, len(texts), 0)
    print(
        f"\nTalkMe outage: {len(expected)} replies queued while down for {REFUSED_S}s, then "
        f"{UNAVAILABLE} x 503; all delivered {recovered_s:.2f}s after it came back; "
        f"attempts that failed: {after['retries']}"
    )
