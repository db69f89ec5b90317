"""A crash between the webhook's 200 and the reply's delivery: kill -9, restart, exactly once.

The gateway runs as a real process (``talkme_server.py``); the fake TalkMe API runs here.
"""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.talkme_fake_api import Scripted
from tests.support.talkme_helpers import webhook_body
from tests.support.talkme_process import GatewayProcess


async def post(url: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/webhook/talkme", json=body) as response:
            return response.status, await response.json()


async def test_killed_after_the_ack_the_reply_is_delivered_once_after_restart(
    tmp_path, fake_talkme
):
    body = webhook_body("are you open?", client_id="crash-1", message_id=9001)
    first = GatewayProcess(tmp_path, fake_talkme.url, agent_delay=2.0)
    await first.start()
    try:
        status, ack = await post(first.url, body)
        assert (status, ack["duplicate"]) == (200, False)
        await first.kill()  # the agent is still thinking: nothing was sent
    finally:
        await first.stop()
    assert fake_talkme.sent_texts() == []

    second = GatewayProcess(tmp_path, fake_talkme.url, agent_delay=0.0)
    await second.start()
    try:
        await fake_talkme.wait_until(lambda: fake_talkme.sent_texts() == ["re: are you open?"])
        status, ack = await post(second.url, body)  # TalkMe redelivers the webhook
        assert (status, ack["duplicate"]) == (200, True)
        await asyncio.sleep(0.5)
    finally:
        await second.stop()
    assert fake_talkme.sent_texts() == ["re: are you open?"]
    assert fake_talkme.calls_to("send")[0].headers["X-Token"] == body["token"]


async def test_killed_mid_reply_the_confirmed_parts_are_not_sent_again(tmp_path, fake_talkme):
    text = "Part one is here. " * 3 + "Part two is here. " * 3 + "Part three is here. " * 3
    body = webhook_body(text, client_id="crash-2", message_id=9002)
    # The second part stalls at TalkMe: the process dies before the API confirms it.
    fake_talkme.script("send", Scripted(), Scripted(delay=30))
    settings = {"talkme": {"max_message_chars": 70}}
    first = GatewayProcess(tmp_path, fake_talkme.url, **settings)
    await first.start()
    try:
        assert (await post(first.url, body))[0] == 200
        await fake_talkme.wait_until(lambda: len(fake_talkme.calls_to("send")) == 2)
        await first.kill()
    finally:
        await first.stop()
    confirmed_before = fake_talkme.sent_texts()
    assert len(confirmed_before) == 1

    second = GatewayProcess(tmp_path, fake_talkme.url, **settings)
    await second.start()
    try:
        await fake_talkme.wait_until(lambda: "".join(fake_talkme.sent_texts()) == f"re: {text}")
        await asyncio.sleep(0.3)
    finally:
        await second.stop()
    texts = fake_talkme.sent_texts()
    assert "".join(texts) == f"re: {text}"
    assert texts[0] == confirmed_before[0] and texts.count(texts[0]) == 1
