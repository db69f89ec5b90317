"""The conversation stores on their own (SQLite and PostgreSQL, see conftest.py): exact
text, the window, clearing, listing, purge."""

import asyncio
import sys
import time

from core.contract.store import ConversationStore, Turn

UNICODE_TEXTS = [
    "Привет, как дела? 👋🏽 👨‍👩‍👧‍👦",
    "مرحبا بالعالم — שלום עולם",  # RTL, mixed with an em dash
    "\u202eevil\u202c bidi override, zero\u200bwidth, e\u0301 combining",
    "tabs\tand\nnewlines\r\nand \x01\x07\x1b[31m control characters\x7f",
    "a NUL \x00 in the middle",
    "half an emoji from a broken client: \ud83d and \udc4b",
    '\'; DROP TABLE turns; -- and "quotes" and ? placeholders :name',
    "",
    "\U0001d573\U0001d58a\U0001d591 汉字 かな 한국어 ∑∫√ \U0010fffd",
]


def turn(text: str, role: str = "user", **fields) -> Turn:
    return Turn(role, text, **{"channel": "test", **fields})


async def texts(store, conversation_id: str, **window) -> list[str]:
    return [t.text for t in await store.history(conversation_id, **window)]


async def test_it_implements_the_store_protocol(store):
    assert isinstance(store, ConversationStore)


async def test_unicode_and_every_field_round_trip_exactly(store, backend):
    stored = [
        Turn(
            "user" if i % 2 == 0 else "assistant",
            text,
            channel="télégram",
            user_id=f"uid-{i}-ü",
            message_id=f"m{i}",
            created_at=1_700_000_000.25 + i,
            metadata={"lang": "ar", "nested": {"n": i, "emoji": "🙂"}, "list": [1, "两"]},
        )
        for i, text in enumerate(UNICODE_TEXTS)
    ]
    for t in stored:
        await store.append("conv ☃ / 1", t)
    assert await store.history("conv ☃ / 1") == stored
    # And after reopening the database, through a fresh connection.
    await backend.close(store)
    reopened = await backend.open(max_messages=None)
    assert await reopened.history("conv ☃ / 1") == stored


async def test_a_100_kb_message_is_stored_whole(store):
    big = ("lorem ипсум 🙂 " * 8_000)[:100_000]
    await store.append("c1", turn(big))
    [back] = await store.history("c1")
    assert back.text == big and len(back.text) == 100_000


async def test_ids_with_lone_surrogates_still_find_their_conversation(store):
    await store.append("bad \udcff id", turn("hello", channel="ch \ud800"))
    assert await texts(store, "bad \udcff id") == ["hello"]
    [info] = await store.list_conversations(channel="ch \ud800")
    assert info.conversation_id == "bad \udcff id"
    assert await store.clear_channel("ch \ud800") == 1


async def test_history_is_the_newest_window_oldest_first(store):
    for i in range(10):
        await store.append("c1", turn(f"t{i}"))
    assert await texts(store, "c1", limit=3) == ["t7", "t8", "t9"]
    assert await texts(store, "c1", limit=0) == []
    assert len(await store.history("c1")) == 10


async def test_the_character_budget_keeps_whole_newest_turns(store):
    for text in ["aaaa", "bbbb", "cccc", "dd"]:
        await store.append("c1", turn(text))
    assert await texts(store, "c1", max_chars=6) == ["cccc", "dd"]
    assert await texts(store, "c1", max_chars=10) == ["bbbb", "cccc", "dd"]
    assert await texts(store, "c1", max_chars=1) == ["dd"], "the newest turn is always kept"
    assert await texts(store, "c1", limit=2, max_chars=100) == ["cccc", "dd"]


async def test_the_configured_window_applies_when_the_caller_gives_none(backend):
    windowed = await backend.open(max_messages=4, max_chars=25)
    for i in range(10):
        await windowed.append("c1", turn(f"turn-{i:02d}"))  # 7 characters each
    assert await texts(windowed, "c1") == ["turn-07", "turn-08", "turn-09"]
    assert await texts(windowed, "c1", limit=2) == ["turn-08", "turn-09"]
    assert len(await windowed.history("c1", limit=6, max_chars=1_000)) == 6


async def test_a_replayed_message_is_remembered_once(store):
    await store.append("c1", turn("hi", message_id="m1"))
    await store.append("c1", turn("hello!", role="assistant", message_id="m1"))
    await store.append("c1", turn("hi", message_id="m1"))  # replay after a crash
    await store.append("c1", turn("hello!", role="assistant", message_id="m1"))
    await store.append("c2", turn("hi", message_id="m1"))  # same id, other conversation
    await store.append("c1", turn("no id"))
    await store.append("c1", turn("no id"))  # without an id nothing is deduplicated
    assert await texts(store, "c1") == ["hi", "hello!", "no id", "no id"]
    assert await texts(store, "c2") == ["hi"]
    [c1] = [info for info in await store.list_conversations() if info.conversation_id == "c1"]
    assert c1.turns == 4


async def test_clear_forgets_one_conversation(store):
    for cid in ("c1", "c2"):
        await store.append(cid, turn("one"))
        await store.append(cid, turn("two"))
    assert await store.clear("c1") == 2
    assert await store.history("c1") == []
    assert await texts(store, "c2") == ["one", "two"]
    assert await store.clear("c1") == 0
    assert await store.count_conversations() == 1
    await store.append("c1", turn("fresh"))
    assert await texts(store, "c1") == ["fresh"]


async def test_clear_channel_forgets_that_channel_only(store):
    await store.append("a1", turn("x", channel="talkme"))
    await store.append("a2", turn("x", channel="talkme"))
    await store.append("b1", turn("x", channel="http"))
    assert await store.clear_channel("talkme") == 2
    assert await store.history("a1") == [] and await store.history("a2") == []
    assert await texts(store, "b1") == ["x"]
    assert await store.count_conversations() == 1
    assert await store.clear_channel("talkme") == 0


async def test_list_count_and_stats(store, backend):
    await store.append("a", turn("1", channel="http"))
    await asyncio.sleep(0.01)  # distinct activity times, so the order is defined
    await store.append("b", turn("1", channel="talkme"))
    await asyncio.sleep(0.01)
    await store.append("a", turn("2", channel="talkme"))  # a keeps its first channel
    infos = await store.list_conversations()
    assert [(i.conversation_id, i.channel, i.turns) for i in infos] == [
        ("a", "http", 2),
        ("b", "talkme", 1),
    ]
    assert infos[0].last_activity >= infos[1].last_activity
    assert [i.conversation_id for i in await store.list_conversations(limit=1, offset=1)] == ["b"]
    assert [i.conversation_id for i in await store.list_conversations("talkme")] == ["b"]
    assert await store.count_conversations() == 2
    assert await store.count_conversations("http") == 1
    stats = await store.stats()
    assert stats["backend"] == backend.name and stats["conversations"] == 2 and stats["turns"] == 3
    assert stats["size_bytes"] > 0
    assert await store.ping() is True


async def test_purge_removes_only_conversations_idle_long_enough(store):
    await store.append("old", turn("x"))
    await asyncio.sleep(0.01)
    between = time.time()
    await asyncio.sleep(0.01)
    await store.append("recent", turn("x"))
    idle_for = 3600.0
    assert await store.purge_idle(idle_for, now=between + idle_for) == 1
    assert await store.history("old") == []
    assert await texts(store, "recent") == ["x"]
    assert [i.conversation_id for i in await store.list_conversations()] == ["recent"]


async def test_purge_works_in_batches(store, monkeypatch):
    monkeypatch.setattr(sys.modules[type(store).__module__], "PURGE_BATCH", 3)
    for i in range(8):
        await store.append(f"c{i}", turn("x"))
    assert await store.purge_idle(0.0, now=time.time() + 1) == 8
    assert await store.count_conversations() == 0
    assert (await store.stats())["turns"] == 0


async def test_a_closed_store_does_not_pass_ping(backend):
    opened = await backend.open()
    await backend.close(opened)
    assert await opened.ping() is False


async def test_append_and_history_is_append_then_history(store):
    await store.append("c1", turn("one", message_id="m1"))
    await store.append("c1", turn("ONE", role="assistant", message_id="m1"))
    window = await store.append_and_history("c1", turn("two", message_id="m2"), limit=2)
    assert [t.text for t in window] == ["ONE", "two"]
    # A replay stores nothing and still returns the window.
    again = await store.append_and_history("c1", turn("two", message_id="m2"))
    assert [t.text for t in again] == ["one", "ONE", "two"]
    window = await store.append_and_history("c1", turn("three"), max_chars=6)
    assert [t.text for t in window] == ["three"]  # with "two" it would pass 6 characters
    assert await texts(store, "c1") == ["one", "ONE", "two", "three"]


async def test_append_and_history_commits_before_it_returns(store, backend):
    await store.append_and_history("c1", turn("kept"))
    # Another connection (another process, after a crash) sees the turn at once.
    other = await backend.open(max_messages=None)
    assert await texts(other, "c1") == ["kept"]


async def test_concurrent_append_and_history_each_see_their_own_turn(store):
    async def one(i: int) -> list[str]:
        window = await store.append_and_history(f"c{i % 5}", turn(f"t{i}"), limit=3)
        return [t.text for t in window]

    windows = await asyncio.gather(*(one(i) for i in range(100)))
    assert all(window[-1] == f"t{i}" for i, window in enumerate(windows))
