"""Thread owners in the store (``core.store.OwnsConversations``): the same behaviour from
the SQLite store and the in-memory one, kept across a restart, and a version-1 file
migrated without losing a turn."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core import OwnsConversations, Turn
from core.engine.memory import InMemoryConversationStore
from plugins.memory_sqlite.schema import MIGRATIONS
from plugins.memory_sqlite.store import SqliteConversationStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "memory":
        yield InMemoryConversationStore()
        return
    async with SqliteConversationStore(tmp_path / "m.db") as sqlite:
        yield sqlite


async def test_claiming_binds_only_new_conversations(store) -> None:
    assert isinstance(store, OwnsConversations)
    assert await store.claim("t1", "visitor:a") is True
    assert await store.claim("t1", "visitor:a") is True  # again: still a's
    assert await store.claim("t1", "visitor:b") is False
    assert await store.owner("t1") == "visitor:a"
    await store.append("t2", Turn("user", "someone else's", "talkme"))
    assert await store.claim("t2", "visitor:a") is False  # has turns, no owner
    assert await store.owner("t2") is None
    assert await store.owner("never") is None


async def test_listing_and_clearing_owned_conversations(store) -> None:
    for thread in ("a1", "a2"):
        assert await store.claim(thread, "visitor:a")
        await store.append(thread, Turn("user", f"hi {thread}", "http_api"))
    assert await store.claim("a3", "visitor:a")  # claimed, still empty
    assert await store.claim("b1", "visitor:b")
    listed = await store.list_owned("visitor:a")
    assert {info.conversation_id for info in listed} == {"a1", "a2", "a3"}
    assert {info.conversation_id: info.turns for info in listed}["a1"] == 1
    assert len(await store.list_owned("visitor:a", limit=2)) == 2
    assert len(await store.list_owned("visitor:a", limit=2, offset=2)) == 1
    await store.clear("a1")
    assert await store.owner("a1") is None
    assert {i.conversation_id for i in await store.list_owned("visitor:a")} == {"a2", "a3"}
    await store.clear_channel("http_api")
    assert await store.owner("a2") is None


async def test_owners_survive_a_restart_and_a_version_1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a file as the previous release left it
        db.execute("PRAGMA application_id = 1164856685")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.executescript(MIGRATIONS[1])
        db.execute("INSERT INTO schema_version(version) VALUES (1)")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO turns(conversation_id, role, text, channel, created_at, stored_at)"
            " VALUES ('old', 'user', 'kept', 'http_api', 1, 1)"
        )
    async with SqliteConversationStore(path) as store:
        assert store.schema_version == 2
        assert [t.text for t in await store.history("old")] == ["kept"]
        assert await store.claim("old", "visitor:a") is False  # existing, unowned
        assert await store.claim("new", "visitor:a") is True
    async with SqliteConversationStore(path) as store:
        assert await store.owner("new") == "visitor:a"
        assert await store.claim("new", "visitor:b") is False
