"""The memory_sqlite plugin inside the real gateway: what the agent is shown, clearing,
restarts, replacement by another store, retention, start-up failures, health."""

import asyncio
import sqlite3

import pytest
from aiohttp import web

from core import hookimpl
from core.contract.errors import PluginError
from core.engine.memory import InMemoryConversationStore
from core.testing import ScriptedAgent, ask, gateway_of
from core.web.app import create_app
from plugins.memory_sqlite.store import SqliteConversationStore


def seen(agent: ScriptedAgent, index: int = -1) -> list[str]:
    """The texts of the history the agent was given for one request."""
    return [t.text for t in agent.requests[index].history]


def turns_in_file(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]


async def test_the_agent_sees_the_conversation_so_far(eneca_app, tmp_path):
    agent = ScriptedAgent()
    client = await eneca_app(plugins=["memory_sqlite"], agent=agent)
    gateway = gateway_of(client)
    assert isinstance(gateway.store, SqliteConversationStore)
    assert gateway.store.path == tmp_path / "data" / "checkpoints.db"
    await ask(gateway, "Привет 👋", "c1")
    await ask(gateway, "other", "c2")
    await ask(gateway, "и снова", "c1")
    assert seen(agent) == ["Привет 👋", "echo: Привет 👋", "и снова"]
    assert seen(agent, 1) == ["other"]


async def test_the_agent_sees_only_the_configured_window(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(
        plugins=["memory_sqlite"], agent=agent, settings={"memory_sqlite": {"max_messages": 3}}
    )
    gateway = gateway_of(client)
    for i in range(5):
        await ask(gateway, f"m{i}")
    assert seen(agent) == ["m3", "echo: m3", "m4"]
    assert len(await gateway.store.history("c1", limit=100)) == 10, "older turns are kept"


async def test_the_character_budget_trims_the_window(eneca_app):
    agent = ScriptedAgent(["x" * 30])
    client = await eneca_app(
        plugins=["memory_sqlite"], agent=agent, settings={"memory_sqlite": {"max_chars": 45}}
    )
    gateway = gateway_of(client)
    await ask(gateway, "first question")
    await ask(gateway, "second")
    assert seen(agent) == ["x" * 30, "second"]


async def test_settings_come_from_memory_env_names(eneca_app, tmp_path, monkeypatch):
    path = tmp_path / "elsewhere" / "mem.db"
    monkeypatch.setenv("MEMORY_SQLITE_PATH", str(path))
    monkeypatch.setenv("MEMORY_MAX_MESSAGES", "2")
    monkeypatch.setenv("MEMORY_MAX_CHARS", "500")
    agent = ScriptedAgent()
    client = await eneca_app(plugins=["memory_sqlite"], agent=agent)
    gateway = gateway_of(client)
    await ask(gateway, "a")
    await ask(gateway, "b")
    assert seen(agent) == ["echo: a", "b"]
    assert gateway.store.path == path and gateway.store.max_chars == 500
    assert turns_in_file(path) == 4


async def test_a_bad_setting_stops_start_up_naming_the_env_key(eneca_app, monkeypatch):
    monkeypatch.setenv("MEMORY_MAX_MESSAGES", "0")
    with pytest.raises(Exception, match="MEMORY_MAX_MESSAGES"):
        await eneca_app(plugins=["memory_sqlite"])


async def test_a_cleared_conversation_starts_again_with_no_history(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(plugins=["memory_sqlite"], agent=agent)
    gateway = gateway_of(client)
    for cid in ("c1", "c2"):
        await ask(gateway, "remember me", cid)
    assert await gateway.clear_session(conversation_id="c1") == 2
    await ask(gateway, "who am I?", "c1")
    assert seen(agent) == ["who am I?"]
    await ask(gateway, "still there?", "c2")
    assert seen(agent) == ["remember me", "echo: remember me", "still there?"]


async def test_clearing_a_channel_forgets_all_its_conversations(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(plugins=["memory_sqlite"], agent=agent)
    gateway = gateway_of(client)
    for cid in ("t1", "t2"):
        await ask(gateway, "hello", cid, channel="talkme")
    await ask(gateway, "hello", "h1", channel="http")
    assert await gateway.clear_session(channel="talkme") == 2
    for cid in ("t1", "t2"):
        await ask(gateway, "again", cid, channel="talkme")
        assert seen(agent) == ["again"]
    await ask(gateway, "again", "h1", channel="http")
    assert seen(agent) == ["hello", "echo: hello", "again"]


async def test_conversations_survive_a_restart(eneca_app, tmp_path):
    data_dir = tmp_path / "kept"
    first = await eneca_app(plugins=["memory_sqlite"], agent=ScriptedAgent(), data_dir=data_dir)
    await ask(gateway_of(first), "my name is Ada ✨", "c1")
    await first.close()

    agent = ScriptedAgent()
    second = await eneca_app(plugins=["memory_sqlite"], agent=agent, data_dir=data_dir)
    await ask(gateway_of(second), "what is my name?", "c1")
    assert seen(agent) == ["my name is Ada ✨", "echo: my name is Ada ✨", "what is my name?"]
    [info] = await gateway_of(second).store.list_conversations()
    assert (info.conversation_id, info.channel, info.turns) == ("c1", "test", 4)


async def test_another_store_plugin_replaces_this_one_through_the_hook(eneca_app, tmp_path):
    other = InMemoryConversationStore()
    agent = ScriptedAgent()
    client = await eneca_app(plugins=["memory_sqlite"], agent=agent, store=other)
    gateway = gateway_of(client)
    assert gateway.store is other
    await ask(gateway, "hi")
    await ask(gateway, "again")
    assert seen(agent) == ["hi", "echo: hi", "again"]
    assert [t.text for t in await other.history("c1")] == ["hi", "echo: hi", "again", "echo: again"]
    assert turns_in_file(tmp_path / "data" / "checkpoints.db") == 0
    health = await (await client.get("/health")).json()
    assert health["plugins"]["memory_sqlite"]["in_use"] is False


class PlainMemoryPlugin:
    """A third-party memory plugin written the ordinary way (no tryfirst)."""

    def __init__(self) -> None:
        self.store = InMemoryConversationStore()

    @hookimpl
    def conversation_store(self):
        return self.store


async def test_an_ordinary_third_party_memory_plugin_wins_over_the_default(eneca_app, tmp_path):
    plugin = PlainMemoryPlugin()
    client = await eneca_app(
        plugins=["memory_sqlite"], agent=ScriptedAgent(), extra={"other_memory": plugin}
    )
    gateway = gateway_of(client)
    assert gateway.store is plugin.store
    await ask(gateway, "hi")
    assert await plugin.store.count_conversations() == 1
    assert turns_in_file(tmp_path / "data" / "checkpoints.db") == 0


async def test_idle_conversations_are_purged_when_a_ttl_is_set(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(
        plugins=["memory_sqlite"],
        agent=agent,
        # About 0.09 s of idleness, checked every 20 ms: purged soon after the reply.
        settings={"memory_sqlite": {"ttl_days": 1e-6, "purge_interval_s": 0.02}},
    )
    gateway = gateway_of(client)
    await ask(gateway, "forget me soon")
    for _ in range(250):
        if await gateway.store.count_conversations() == 0:
            break
        await asyncio.sleep(0.02)
    assert await gateway.store.count_conversations() == 0
    assert await gateway.store.history("c1") == []
    health = await (await client.get("/health")).json()
    assert health["plugins"]["memory_sqlite"]["purge"]["removed"] >= 1


async def test_without_a_ttl_nothing_is_purged(eneca_app):
    client = await eneca_app(
        plugins=["memory_sqlite"],
        agent=ScriptedAgent(),
        settings={"memory_sqlite": {"ttl_days": 0, "purge_interval_s": 0.01}},
    )
    gateway = gateway_of(client)
    await ask(gateway, "keep me")
    await asyncio.sleep(0.1)
    assert await gateway.store.count_conversations() == 1
    health = await (await client.get("/health")).json()
    assert "purge" not in health["plugins"]["memory_sqlite"]


async def test_a_corrupt_database_stops_start_up_naming_the_file(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "checkpoints.db"
    path.write_bytes(b"definitely not sqlite " * 100)
    config = tmp_path / "settings.toml"
    config.touch()
    # Started by hand: the eneca_app fixture's client leaks a session when start-up fails.
    app = create_app(
        config_file=config,
        env_file=None,
        overrides={
            "core": {
                "plugins": ["memory_sqlite"],
                "data_dir": str(data_dir),
                "log_dir": str(tmp_path / "logs"),
            }
        },
    )
    runner = web.AppRunner(app)
    with pytest.raises(PluginError) as error:
        await runner.setup()
    await app.cleanup()
    assert "memory_sqlite" in str(error.value) and str(path) in str(error.value)
    assert path.read_bytes() == b"definitely not sqlite " * 100


async def test_health_reports_the_file(eneca_app, tmp_path):
    client = await eneca_app(plugins=["memory_sqlite"], agent=ScriptedAgent())
    resp = await client.get("/health")
    assert resp.status == 200
    check = (await resp.json())["plugins"]["memory_sqlite"]
    assert check["ok"] is True and check["in_use"] is True
    assert check["path"] == str(tmp_path / "data" / "checkpoints.db")
    assert check["schema_version"] >= 1
