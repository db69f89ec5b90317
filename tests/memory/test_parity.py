"""The SQLite and PostgreSQL stores answer exactly as core's InMemoryConversationStore
does, for any sequence of operations (property-based)."""

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.contract.store import Turn
from core.engine.memory import InMemoryConversationStore
from plugins.memory_sqlite.store import SqliteConversationStore
from plugins.postgres.connect import open_database
from plugins.postgres.settings import PostgresSettings
from plugins.postgres.store import PostgresConversationStore

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
conversation_ids = st.sampled_from(["c1", "c1", "c2", "ç3 ☃", "\ud800"])
channels = st.sampled_from(["http", "talkme", ""])
turns = st.builds(
    Turn,
    role=st.sampled_from(["user", "assistant"]),
    text=any_text,
    channel=channels,
    user_id=st.none() | st.just("u1"),
    message_id=st.sampled_from([None, "m1", "m2"]),
    created_at=st.floats(0, 2e9),
    metadata=st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2),
)
windows = st.none() | st.integers(-1, 6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), conversation_ids, turns),
        st.tuples(st.just("append"), conversation_ids, turns),
        st.tuples(st.just("append"), conversation_ids, turns),
        st.tuples(st.just("history"), conversation_ids, windows, st.none() | st.integers(-1, 30)),
        st.tuples(
            st.just("append_and_history"),
            conversation_ids,
            turns,
            windows,
            st.none() | st.integers(-1, 30),
        ),
        st.tuples(st.just("clear"), conversation_ids),
        st.tuples(st.just("clear_channel"), channels),
        st.tuples(st.just("list"), st.none() | channels),
        st.tuples(st.just("count"), st.none() | channels),
    ),
    max_size=30,
)


async def run(store, ops) -> list[object]:
    answers: list[object] = []
    for op, *args in ops:
        if op == "append":
            answers.append(await store.append(*args))
        elif op == "history":
            cid, limit, max_chars = args
            answers.append(await store.history(cid, limit=limit, max_chars=max_chars))
        elif op == "append_and_history":
            cid, turn, limit, max_chars = args
            answers.append(await store.append_and_history(cid, turn, limit, max_chars))
        elif op == "clear":
            answers.append(await store.clear(*args))
        elif op == "clear_channel":
            answers.append(await store.clear_channel(*args))
        elif op == "list":
            infos = await store.list_conversations(*args)
            # Activity times differ between the two stores; compare what they describe.
            answers.append(sorted((i.conversation_id, i.channel, i.turns) for i in infos))
        elif op == "count":
            answers.append(await store.count_conversations(*args))
    return answers


async def compare(ops) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteConversationStore(
            Path(folder) / "p.db", max_messages=None
        ) as sqlite_store:
            assert await run(sqlite_store, ops) == await run(InMemoryConversationStore(), ops)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_sqlite_store_behaves_like_the_in_memory_store(ops):
    asyncio.run(compare(ops))


async def compare_postgres(ops, db, schema: str) -> None:
    await db.execute(f'TRUNCATE "{schema}".turns, "{schema}".conversations')
    store = PostgresConversationStore(db, schema, max_messages=None)
    assert await run(store, ops) == await run(InMemoryConversationStore(), ops)


def test_postgres_store_behaves_like_the_in_memory_store(postgres_dsn, postgres_schema):
    # One event loop and one pool for every example (a pool per example is slow).
    loop = asyncio.new_event_loop()
    settings_ = PostgresSettings(dsn=postgres_dsn, schema=postgres_schema, pool_size=2)
    db, _ = loop.run_until_complete(open_database(settings_))

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations)
    def check(ops):
        loop.run_until_complete(compare_postgres(ops, db, postgres_schema))

    try:
        check()
    finally:
        loop.run_until_complete(db.close())
        loop.close()
