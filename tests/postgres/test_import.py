"""``eneca-bot postgres import-sqlite DATA_DIR``: an SQLite deployment's conversations, moved."""

import asyncio

import pytest

from core.cli import main as cli_main
from core.contract.store import Turn
from plugins.memory_sqlite.store import SqliteConversationStore
from plugins.postgres.connect import open_database
from plugins.postgres.settings import PostgresSettings
from plugins.postgres.store import PostgresConversationStore

TURNS = [
    Turn("user", "Привет \x00 \ud83d", "talkme", "u1", "m1", 1.5, {"lang": "ru"}),
    Turn("assistant", "Здравствуйте!", "talkme", None, "m1", 2.5),
    Turn("user", "second", "talkme", "u1", "m2", 3.5),
]


async def sqlite_deployment(data_dir):
    async with SqliteConversationStore(data_dir / "checkpoints.db", max_messages=None) as store:
        for turn in TURNS:
            await store.append("visitor ☃", turn)
        await store.append("other", Turn("user", "hi", "http"))


async def pg_history(dsn, schema, conversation):
    db, _ = await open_database(PostgresSettings(dsn=dsn, schema=schema, pool_size=2))
    try:
        store = PostgresConversationStore(db, schema, max_messages=None)
        return await store.history(conversation), await store.count_conversations()
    finally:
        await db.close()


@pytest.fixture
def cli_env(monkeypatch, tmp_path, postgres_dsn, postgres_schema):
    monkeypatch.chdir(tmp_path)  # no .env or config/settings.toml of the checkout
    monkeypatch.setenv("PLUGINS", "postgres")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "new-data"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("POSTGRES_DSN", postgres_dsn)
    monkeypatch.setenv("POSTGRES_SCHEMA", postgres_schema)
    return tmp_path


def test_import_sqlite_copies_every_turn_exactly_once(
    cli_env, postgres_dsn, postgres_schema, capsys
):
    old = cli_env / "old-data"
    old.mkdir()
    asyncio.run(sqlite_deployment(old))
    assert cli_main(["postgres", "import-sqlite", str(old)]) == 0
    assert f"imported 4 turn(s) into PostgreSQL schema {postgres_schema}" in capsys.readouterr().out
    history, conversations = asyncio.run(pg_history(postgres_dsn, postgres_schema, "visitor ☃"))
    assert history == TURNS and conversations == 2
    # A second run would store everything twice: refused, with one line.
    assert cli_main(["postgres", "import-sqlite", str(old)]) == 1
    assert "already holds conversations" in capsys.readouterr().err


def test_import_sqlite_names_a_missing_database(cli_env, capsys):
    assert cli_main(["postgres", "import-sqlite", str(cli_env / "nowhere")]) == 1
    assert "no SQLite conversation database at" in capsys.readouterr().err
