"""Opening the database: new and empty files are migrated; anything doubtful stops
start-up with a message naming the file, and the file is left exactly as it was."""

import sqlite3

import pytest

from core.contract.errors import PluginError
from core.contract.store import Turn
from plugins.memory_sqlite.schema import APPLICATION_ID, LATEST_VERSION
from plugins.memory_sqlite.store import SqliteConversationStore


def schema_of(path) -> tuple[int, int, set[str]]:
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    return version, app_id, names


async def test_an_empty_file_is_migrated_to_the_latest_schema(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    async with SqliteConversationStore(path) as store:
        assert store.schema_version == LATEST_VERSION
        await store.append("c1", Turn("user", "hi"))
        assert [t.text for t in await store.history("c1")] == ["hi"]
    version, app_id, names = schema_of(path)
    assert (version, app_id) == (LATEST_VERSION, APPLICATION_ID)
    assert {"turns", "conversations", "turns_by_conversation", "turns_replayed"} <= names
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_missing_file_and_its_folders_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "memory.db"
    async with SqliteConversationStore(path) as store:
        await store.append("c1", Turn("user", "hi"))
    assert path.is_file()


async def test_a_first_migration_that_was_interrupted_is_finished(tmp_path):
    path = tmp_path / "half.db"
    with sqlite3.connect(path) as db:  # stamped as ours, but no tables yet (version 0)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    async with SqliteConversationStore(path) as store:
        await store.append("c1", Turn("user", "hi"))
    assert schema_of(path)[0] == LATEST_VERSION


async def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    path = tmp_path / "m.db"
    for text in ("one", "two"):
        async with SqliteConversationStore(path) as store:
            await store.append("c1", Turn("user", text))
    async with SqliteConversationStore(path) as store:
        assert [t.text for t in await store.history("c1")] == ["one", "two"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1


async def test_a_newer_schema_version_refuses_to_start(tmp_path):
    path = tmp_path / "future.db"
    async with SqliteConversationStore(path) as store:
        await store.append("c1", Turn("user", "keep me"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION + 7,))
    before = path.read_bytes()
    with pytest.raises(PluginError) as error:
        await SqliteConversationStore(path).open()
    message = str(error.value)
    assert str(path) in message and f"schema version {LATEST_VERSION + 7}" in message
    assert "upgrade" in message
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is not a database at all\n" * 200,
        b"SQLite format 3\x00" + b"\xff" * 4080,  # a real header, then noise
    ],
)
async def test_a_corrupt_file_refuses_to_start_and_is_left_alone(tmp_path, garbage):
    path = tmp_path / "checkpoints.db"
    path.write_bytes(garbage)
    with pytest.raises(PluginError) as error:
        await SqliteConversationStore(path).open()
    assert str(path) in str(error.value)
    assert path.read_bytes() == garbage, "the file must never be replaced"


async def test_damage_inside_a_valid_looking_file_refuses_to_start(tmp_path):
    path = tmp_path / "checkpoints.db"
    async with SqliteConversationStore(path) as store:
        for i in range(300):
            await store.append(f"c{i % 7}", Turn("user", f"turn {i} " + "x" * 200))
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 12
    damaged = bytearray(path.read_bytes())
    damaged[page_size * 3 : page_size * 12] = b"\x5a" * (page_size * 9)  # header intact
    path.write_bytes(bytes(damaged))
    with pytest.raises(PluginError) as error:
        await SqliteConversationStore(path).open()
    assert str(path) in str(error.value) and "damaged" in str(error.value)
    assert path.read_bytes() == bytes(damaged)


def a_folder(path):
    path.mkdir()  # a folder where the file should be (root can read any file)


def a_dangling_link(path):
    path.symlink_to(path.parent / "missing" / "folder" / "x.db")  # sqlite cannot open it


@pytest.mark.parametrize("make_unopenable", [a_folder, a_dangling_link])
async def test_an_unopenable_path_refuses_to_start(tmp_path, make_unopenable):
    path = tmp_path / "checkpoints.db"
    make_unopenable(path)
    with pytest.raises(PluginError) as error:
        await SqliteConversationStore(path).open()
    assert str(path) in str(error.value)


async def test_another_programs_database_is_not_written_into(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    before = path.read_bytes()
    with pytest.raises(PluginError) as error:
        await SqliteConversationStore(path).open()
    assert str(path) in str(error.value) and "another program" in str(error.value)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 42")
    with pytest.raises(PluginError, match="not an eneca-bot conversation database"):
        await SqliteConversationStore(path).open()
