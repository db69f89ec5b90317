"""Replies through sendMessage: splitting, retries on 429/5xx, giving up on other 4xx,
never resending a part Telegram confirmed."""

import contextlib
import sqlite3
import time
from pathlib import Path

import aiohttp
from eneca_telegram.split import split_text

from core.testing import ScriptedAgent, wait_delivered


async def test_a_long_reply_is_split_into_messages_of_at_most_4096_characters(tg):
    text = ("word " * 2000).strip()  # 9999 characters
    tg.agent = ScriptedAgent(text)
    tg.answer_typing()
    tg.answer_send(repeat=True)
    await tg.start()
    await tg.post(tg.update(1))
    await wait_delivered(tg.gateway, channel="telegram")
    parts = [body["text"] for body in tg.sent()]
    assert len(parts) == 3
    assert all(len(part) <= 4096 for part in parts)
    assert "".join(parts) == text
    assert {body["chat_id"] for body in tg.sent()} == {42}


def test_splitting_counts_utf16_units_and_keeps_every_character():
    text = "😀" * 3000 + " tail"  # 6000 UTF-16 units of emoji
    parts = split_text(text, 4096)
    assert "".join(parts) == text
    assert all(len(part.encode("utf-16-le")) // 2 <= 4096 for part in parts)


async def test_429_waits_retry_after_then_delivers(tg):
    calls: list[float] = []

    def record(url, **kwargs):
        calls.append(time.monotonic())

    tg.answer_typing()
    tg.http.post(
        tg.send_url,
        status=429,
        payload={
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
        callback=record,
    )
    tg.http.post(tg.send_url, payload={"ok": True, "result": {}}, callback=record)
    await tg.start()
    await tg.post(tg.update(1))
    stats = await wait_delivered(tg.gateway, channel="telegram")
    assert (stats["delivered"], stats["retries"]) == (1, 1)
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.95  # the outbox waited as Telegram asked


async def test_server_errors_and_lost_connections_are_retried(tg):
    tg.answer_typing()
    tg.http.post(tg.send_url, status=502, payload={"ok": False, "description": "Bad Gateway"})
    tg.http.post(tg.send_url, exception=aiohttp.ClientConnectionError("reset"))
    tg.answer_send()
    await tg.start()
    await tg.post(tg.update(1))
    stats = await wait_delivered(tg.gateway, channel="telegram")
    assert (stats["delivered"], stats["retries"], stats["failed"]) == (1, 2, 0)
    assert [body["text"] for body in tg.sent()] == ["echo: hello"] * 3


async def test_other_client_errors_are_given_up_at_once(tg):
    tg.answer_typing()
    tg.answer_send(status=400, ok=False, error_code=400, description="Bad Request: chat not found")
    await tg.start()
    await tg.post(tg.update(1))
    stats = await wait_delivered(tg.gateway, channel="telegram")
    assert (stats["failed"], stats["delivered"], stats["retries"]) == (1, 0, 0)
    assert len(tg.sent()) == 1


async def test_parts_confirmed_before_a_failure_are_not_sent_again(tg):
    text = "a" * 4000 + " " + "b" * 4000 + " " + "c" * 100
    tg.agent = ScriptedAgent(text)
    tg.answer_typing()
    tg.answer_send()  # part 1 arrives
    tg.answer_send(status=500, ok=False, description="Internal Server Error")  # part 2 fails
    tg.answer_send(repeat=True)  # the retry
    await tg.start()
    await tg.post(tg.update(1))
    await wait_delivered(tg.gateway, channel="telegram")
    sent = [body["text"][0] for body in tg.sent()]
    assert sent == ["a", "b", "b", "c"]


async def test_replies_in_one_chat_arrive_in_order(tg):
    tg.answer_typing()
    tg.answer_send(repeat=True)
    await tg.start()
    for number in range(1, 6):
        assert (await tg.post(tg.update(number, f"m{number}"))).status == 200
    await wait_delivered(tg.gateway, count=5, channel="telegram")
    assert [body["text"] for body in tg.sent()] == [f"echo: m{n}" for n in range(1, 6)]


async def test_the_token_never_reaches_the_logs_or_the_outbox(tg, tmp_path: Path):
    tg.answer_typing()
    tg.answer_send(status=401, ok=False, error_code=401, description="Unauthorized")
    await tg.start()
    await tg.post(tg.update(1))
    await wait_delivered(tg.gateway, channel="telegram")
    # Read from the gateway's inbox/outbox file: the façade does not expose its rows.
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "gateway.db")) as db:
        (error,) = db.execute("SELECT last_error FROM outbox").fetchone()
    assert "Unauthorized" in error and tg.token not in error
    logs = "".join(path.read_text() for path in (tmp_path / "logs").rglob("*") if path.is_file())
    assert "Unauthorized" in logs
    assert tg.token not in logs
