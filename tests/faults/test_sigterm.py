"""Fault: SIGTERM while requests are in flight and TalkMe work is queued.

The in-flight /api/chat requests get their 200 replies within the grace period, the
process exits 0, and the TalkMe messages it had accepted but not answered stay in the inbox
and are answered and delivered, once each and in order, after the next start.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp

from tests.support.clients import chat, echo, eventually, thread_messages, webhook
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess, base_env
from tests.support.talkme_fake_api import FakeTalkMe

GRACE_S = 3
LLM_S = 1.0
HTTP_CLIENTS = 8
VISITORS = 3
MESSAGES = 8  # per visitor: LLM_S each, more than the grace period can answer


def inbox_states(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status").fetchall())


async def test_sigterm_finishes_in_flight_requests_keeps_queued_talkme_work_exits_0(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe
) -> None:
    llm.default = echo(stall_s=LLM_S)
    env = base_env(
        tmp_path,
        OPENAI_BASE_URL=llm.base_url,
        TALKME_API_URL=talkme.url,
        SHUTDOWN_GRACE_S=GRACE_S,
    )
    first = ServeProcess(tmp_path, env)
    await first.start()
    async with aiohttp.ClientSession() as session:
        for number in range(1, MESSAGES + 1):
            for visitor in range(VISITORS):
                outcome = await webhook(
                    session, first.url, f"term-{visitor}", visitor * 100 + number,
                    f"t{visitor}-m{number}",
                )  # fmt: skip
                assert outcome.status == 200, outcome
        asks = [
            asyncio.ensure_future(chat(session, first.url, f"http-{n}", f"question {n}"))
            for n in range(HTTP_CLIENTS)
        ]
        await eventually(
            lambda: len(llm.requests) >= HTTP_CLIENTS + VISITORS, 5, "all requests in flight"
        )
        signalled_at = time.monotonic()
        first.terminate()
        outcomes = await asyncio.gather(*asks)
        exit_code = await first.wait(4 * GRACE_S)
        shutdown_s = time.monotonic() - signalled_at

    assert exit_code == 0, first.stderr()
    for n, outcome in enumerate(outcomes):  # the in-flight requests were answered
        assert outcome.ok and outcome.body["response"] == f"re: question {n}", outcome
    kept = inbox_states(tmp_path / "data" / "gateway.db")
    assert kept.get("pending", 0) > 0, kept  # accepted, not answered, still in the inbox
    delivered_before = len(talkme.sent_texts())

    llm.default = echo()
    second = ServeProcess(tmp_path, env)
    await second.start()
    expected = [f"re: t{v}-m{n}" for n in range(1, MESSAGES + 1) for v in range(VISITORS)]
    try:
        catch_up_s = await eventually(
            lambda: len(talkme.sent_texts()) >= len(expected), 15, "queued work done"
        )
        await asyncio.sleep(0.5)  # time for a wrong second send to show up
        async with aiohttp.ClientSession() as session:
            for visitor in range(VISITORS):
                stored = await thread_messages(session, second.url, f"talkme:term-{visitor}")
                asked = [f"t{visitor}-m{n}" for n in range(1, MESSAGES + 1)]
                assert [m["content"] for m in stored] == [
                    text for q in asked for text in (q, f"re: {q}")
                ]
    finally:
        assert await second.stop() == 0, second.stderr()
    texts = talkme.sent_texts()
    assert sorted(texts) == sorted(expected)  # every one, none twice
    for visitor in range(VISITORS):
        own = [text for text in texts if text.startswith(f"re: t{visitor}-")]
        assert own == [f"re: t{visitor}-m{n}" for n in range(1, MESSAGES + 1)]
    print(
        f"\nSIGTERM: {HTTP_CLIENTS} in-flight /api/chat answered 200, exit 0 after "
        f"{shutdown_s:.2f}s (grace {GRACE_S}s); TalkMe {delivered_before}/{len(expected)} "
        f"delivered before the stop, inbox at exit {kept}; the rest delivered "
        f"{catch_up_s:.2f}s after the restart"
    )
