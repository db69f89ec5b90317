"""Fault: the data directory not writable, a database file corrupt, the disk full.

At start-up the server stops with one clear line naming the file (exit 1, no traceback).
At run time a write that fails is a JSON 503 ``storage_unavailable`` - the TalkMe webhook
too, so TalkMe redelivers rather than being told 200 for a message that was not kept - and
``/health`` is 503 ``degraded`` with the reason until writes work again. Nothing is lost:
every retried message is answered once, and stored once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.support.clients import (
    chat,
    chat_stream,
    echo,
    eventually,
    get_json,
    thread_messages,
    webhook,
)
from tests.support.disks import full_disk, read_only_dir
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess, base_env
from tests.support.talkme_fake_api import FakeTalkMe


async def start_fails(work_dir: Path, env: dict[str, str]) -> str:
    """Run ``serve`` expecting it to stop by itself; its stderr."""
    server = ServeProcess(work_dir, env)
    await server.spawn()
    try:
        exit_code = await server.wait(20)  # a hang (a thread left open) fails here
    finally:
        await server.kill()
    stderr = server.stderr()
    assert exit_code == 1, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("eneca-bot: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


async def test_unwritable_data_dir_stops_start_up_with_one_line_naming_it(tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "readonly") as (data_dir, how):
        error = await start_fails(tmp_path, base_env(tmp_path, DATA_DIR=data_dir))
    assert str(data_dir) in error, error
    print(f"\nunwritable DATA_DIR ({how}): {error}")


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, it was overwritten\n" * 200)


def damage_pages(path: Path) -> None:
    """Keep the header (it still looks like SQLite) but overwrite the pages after it."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as handle:
        handle.seek(page_size)
        handle.write(b"\xde\xad\xbe\xef" * (page_size // 2))


@pytest.mark.parametrize(
    ("file_name", "corrupt"),
    [
        ("checkpoints.db", garbage),
        ("gateway.db", garbage),
        ("checkpoints.db", damage_pages),
        ("gateway.db", damage_pages),
    ],
    ids=["memory-garbage", "inbox-garbage", "memory-damaged-pages", "inbox-damaged-pages"],
)
async def test_corrupt_database_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, llm: FakeOpenAI, file_name: str, corrupt: Callable[[Path], None]
) -> None:
    env = base_env(tmp_path, OPENAI_BASE_URL=llm.base_url)
    server = ServeProcess(tmp_path, env)
    await server.start()
    async with aiohttp.ClientSession() as session:
        for n in range(20):  # some pages to damage
            assert (await chat(session, server.url, f"c{n}", "x" * 2000)).ok
    assert await server.stop() == 0
    path = tmp_path / "data" / file_name
    before = path.read_bytes()
    corrupt(path)
    damaged = path.read_bytes()
    error = await start_fails(tmp_path, env)
    assert str(path) in error, error
    assert path.read_bytes() == damaged != before  # left as it was, for recovery
    print(f"\n{file_name} {corrupt.__name__}: {error}")


@pytest.mark.parametrize("force_limit", [False, True], ids=["tmpfs", "file-size-limit"])
async def test_disk_full_at_run_time_503_degraded_nothing_lost_then_recovers(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe, force_limit: bool
) -> None:
    data_dir = tmp_path / "data"
    with full_disk(data_dir, force_limit) as disk:
        if force_limit is False and disk.kind != "tmpfs 4 MB filled to ENOSPC":
            pytest.skip("mounting a tmpfs is refused here; the file-size-limit case covers it")
        env = base_env(tmp_path, OPENAI_BASE_URL=llm.base_url, TALKME_API_URL=talkme.url)
        server = ServeProcess(tmp_path, env)
        disk.prepare(server)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                await run_disk_full_scenario(session, server, disk, talkme)
        finally:
            exit_code = await server.stop()
        assert exit_code == 0, server.stderr()
        with sqlite3.connect(data_dir / "checkpoints.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def run_disk_full_scenario(
    session: aiohttp.ClientSession, server: ServeProcess, disk, talkme: FakeTalkMe
) -> None:
    big = "ж" * 15_000  # 30 KB: needs new pages wherever it is written
    mid = "ж" * 1_500  # 3 KB: a TalkMe reply still sent as one message
    questions = [f"q{n} {big}" for n in range(3)]
    assert (await chat(session, server.url, "disk", "before")).ok
    assert (await webhook(session, server.url, "disk-visitor", 1, "m1")).status == 200
    await eventually(lambda: talkme.sent_texts() == ["re: m1"], 10, "first reply delivered")

    filled = disk.fill()
    refused_chats = [await chat(session, server.url, "disk", q) for q in questions]
    refused_hooks = [
        await webhook(session, server.url, "disk-visitor", n, f"m{n} {mid}") for n in (2, 3, 4)
    ]
    streamed = await chat_stream(session, server.url, "disk-stream", f"s {big}")
    status, degraded = await get_json(session, f"{server.url}/health")
    still, _ = await get_json(session, f"{server.url}/health")

    for outcome in [*refused_chats, *refused_hooks]:
        assert outcome.status == 503, outcome
        assert outcome.body["error"]["code"] == "storage_unavailable", outcome
        assert outcome.headers.get("Retry-After"), outcome
    # The stream had started (200) before the pipeline failed: it ends in an error event.
    assert streamed.status == 200 and streamed.body["type"] == "error", streamed
    assert (status, still, degraded["status"]) == (503, 503, "degraded"), degraded
    storage = degraded["plugins"]["storage"]
    assert storage["ok"] is False and storage["error"], storage

    disk.free()
    status, healthy = await get_json(session, f"{server.url}/health")
    assert (status, healthy["status"]) == (200, "ok"), healthy
    # Clients retry: the HTTP client its questions, TalkMe the webhooks it got no 200 for.
    for q in questions:
        assert (await chat(session, server.url, "disk", q)).ok
    for n in (2, 3, 4):
        outcome = await webhook(session, server.url, "disk-visitor", n, f"m{n} {mid}")
        assert outcome.status == 200 and outcome.body["duplicate"] is False, outcome
    expected = ["re: m1", *(f"re: m{n} {mid}" for n in (2, 3, 4))]
    await eventually(lambda: len(talkme.sent_texts()) >= 4, 10, "retried webhooks answered")
    await asyncio.sleep(0.3)
    assert talkme.sent_texts() == expected  # each once, in order

    stored = [m["content"] for m in await thread_messages(session, server.url, "disk")]
    assert stored == ["before", "re: before", *(t for q in questions for t in (q, f"re: {q}"))]
    visitor = await thread_messages(session, server.url, "talkme:disk-visitor")
    assert [m["content"] for m in visitor] == [
        t for n in (1, 2, 3, 4) for t in (f"m{n}" + ("" if n == 1 else f" {mid}"), expected[n - 1])
    ]
    print(
        f"\ndisk full ({disk.kind}, {filled} filler bytes): {len(refused_chats)} chats and "
        f"{len(refused_hooks)} webhooks got 503 storage_unavailable, stream ended with "
        f"{streamed.body.get('code')!r}, /health degraded: {storage['error']!r}; "
        f"after freeing: healthy, all retried and stored once"
    )


@pytest.mark.parametrize("force_limit", [False, True], ids=["tmpfs", "file-size-limit"])
async def test_disk_full_while_a_kept_message_is_answered_it_is_answered_after_recovery(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe, force_limit: bool
) -> None:
    """The webhook got its 200 (the message is kept); the disk fills while the model thinks,
    so its reply cannot be stored. Once writes work again it is answered, once."""
    data_dir = tmp_path / "data"
    llm.default = echo(stall_s=1.0)
    with full_disk(data_dir, force_limit) as disk:
        if force_limit is False and disk.kind != "tmpfs 4 MB filled to ENOSPC":
            pytest.skip("mounting a tmpfs is refused here; the file-size-limit case covers it")
        env = base_env(tmp_path, OPENAI_BASE_URL=llm.base_url, TALKME_API_URL=talkme.url)
        server = ServeProcess(tmp_path, env)
        disk.prepare(server)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                kept = await webhook(session, server.url, "stalled", 7, "kept " + "ж" * 1500)
                assert kept.status == 200, kept
                await eventually(lambda: len(llm.requests) == 1, 5, "the model is asked")
                disk.fill()
                await asyncio.sleep(1.5)  # the reply exists now but could not be stored
                status, health = await get_json(session, f"{server.url}/health")
                assert status == 503, health
                assert talkme.sent_texts() == []
                llm.default = echo()
                disk.free()
                status, health = await get_json(session, f"{server.url}/health")
                assert status == 200, health
                await eventually(lambda: len(talkme.sent_texts()) == 1, 10, "answered after all")
                await asyncio.sleep(0.3)
                stored = await thread_messages(session, server.url, "talkme:stalled")
        finally:
            exit_code = await server.stop()
        assert exit_code == 0, server.stderr()
    assert talkme.sent_texts() == ["re: kept " + "ж" * 1500]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert "storage works again: answering the message held by the failure" in server.stderr()
