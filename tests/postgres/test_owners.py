"""The optional OwnsConversations contract (issue 14) on the PostgreSQL store."""

import asyncio

import pytest

from core.contract.store import Turn
from plugins.postgres.store import PostgresConversationStore


@pytest.fixture
def store(postgres_db, postgres_schema):
    return PostgresConversationStore(postgres_db, postgres_schema, max_messages=None)


async def test_a_new_conversation_is_claimed_once(store):
    assert await store.claim("c1", "visitor:a") is True
    assert await store.claim("c1", "visitor:a") is True  # already theirs
    assert await store.claim("c1", "visitor:b") is False
    assert await store.owner("c1") == "visitor:a"
    assert await store.owner("c2") is None


async def test_concurrent_claims_give_one_owner(store):
    results = await asyncio.gather(*(store.claim("c1", f"visitor:{n}") for n in range(8)))
    assert results.count(True) == 1
    assert await store.owner("c1") == f"visitor:{results.index(True)}"


async def test_turns_without_an_owner_cannot_be_claimed(store):
    await store.append("old", Turn("user", "hi", "http"))
    assert await store.claim("old", "visitor:a") is False
    assert await store.owner("old") is None


async def test_owned_conversations_are_listed_most_recent_first(store):
    assert await store.claim("empty", "visitor:a")
    await asyncio.sleep(0.01)
    assert await store.claim("used", "visitor:a")
    await store.append("used", Turn("user", "hi", "http"))
    assert await store.claim("other", "visitor:b")
    listed = await store.list_owned("visitor:a")
    assert [(i.conversation_id, i.channel, i.turns) for i in listed] == [
        ("used", "http", 1),
        ("empty", "", 0),
    ]
    assert [i.conversation_id for i in await store.list_owned("visitor:a", 1, 1)] == ["empty"]


async def test_clearing_drops_the_owner_with_the_conversation(store):
    for cid in ("a", "b"):
        assert await store.claim(cid, "visitor:x")
        await store.append(cid, Turn("user", "hi", "talkme"))
    assert await store.clear("a") == 1
    assert await store.owner("a") is None
    assert await store.clear_channel("talkme") == 1
    assert await store.owner("b") is None
    assert await store.claim("c", "visitor:y")
    await store.append("c", Turn("user", "hi", "http"))
    assert await store.purge_idle(0.0, now=10**12) == 1
    assert await store.owner("c") is None
    assert await store.claim("c", "visitor:z") is True  # free again
