"""Plugin discovery through entry points, enabling, disabling, failures naming the plugin."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.contract.errors import PluginError
from core.contract.events import Message, Reply
from core.plugins import hookimpl
from core.testing import ScriptedAgent, ask, gateway_of
from core.web.app import create_app
from tests.support.thirdparty import BROKEN_SOURCE, make_distribution

ROOT = Path(__file__).resolve().parents[2]
ENECA = str(Path(sys.executable).with_name("eneca-bot"))


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    site = make_distribution(tmp_path / "site")
    make_distribution(site, "broken", BROKEN_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    return site


async def test_a_third_party_entry_point_plugin_is_discovered_and_served(eneca_app, third_party):
    client = await eneca_app(plugins=["hello"], agent=ScriptedAgent())
    response = await client.get("/hello")
    assert response.status == 200
    assert await response.json() == {"hello": "from a third party"}
    gateway = gateway_of(client)
    await ask(gateway, "seen by the plugin")
    plugin = gateway._pm.get_plugin("hello")
    assert plugin.seen == ["seen by the plugin"]


async def test_a_disabled_plugin_registers_nothing(eneca_app, third_party):
    client = await eneca_app(plugins=[], agent=ScriptedAgent())
    response = await client.get("/hello")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


def test_an_enabled_plugin_that_is_not_installed_stops_start_up_naming_it(tmp_path):
    with pytest.raises(PluginError, match="'nosuchplugin' is enabled but not installed"):
        create_app(
            env_file=None,
            config_file=_empty(tmp_path),
            overrides={"core": {"plugins": ["nosuchplugin"], "log_dir": str(tmp_path)}},
        )


def test_a_plugin_that_fails_to_import_stops_start_up_naming_it(tmp_path, third_party):
    with pytest.raises(PluginError, match="'broken' failed to import: ImportError"):
        create_app(
            env_file=None,
            config_file=_empty(tmp_path),
            overrides={"core": {"plugins": ["broken"], "log_dir": str(tmp_path)}},
        )


def test_cli_names_the_missing_plugin_in_one_line_without_traceback(tmp_path, third_party):
    result = _cli(tmp_path, "check", PLUGINS="hello,nosuchplugin", PYTHONPATH=str(third_party))
    assert result.returncode == 1
    assert "nosuchplugin" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_lists_every_discovered_plugin_with_version_and_state(tmp_path, third_party):
    result = _cli(tmp_path, "plugins", PLUGINS="hello,memory_sqlite", PYTHONPATH=str(third_party))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "enabled" in lines["hello"] and "eneca-hello 1.2.3" in lines["hello"]
    assert "enabled" in lines["memory_sqlite"]
    assert "disabled" in lines["talkme"]


class Exploding:
    @hookimpl
    def message_received(self, message):
        raise RuntimeError("observer exploded")

    @hookimpl
    async def reply_ready(self, reply):
        raise RuntimeError("async observer exploded")


class Counting:
    def __init__(self):
        self.replies: list[Reply] = []

    @hookimpl
    async def reply_ready(self, reply):
        self.replies.append(reply)


async def test_a_raising_plugin_is_logged_by_name_and_others_go_on(eneca_app, tmp_path):
    counting = Counting()
    client = await eneca_app(
        agent=ScriptedAgent(), extra={"exploding": Exploding(), "counting": counting}
    )
    gateway = gateway_of(client)
    first = await ask(gateway, "one", "c1")
    second = await ask(gateway, "two", "c2")
    assert (first.text, second.text) == ("echo: one", "echo: two")
    assert [r.text for r in counting.replies] == ["echo: one", "echo: two"]
    log = (tmp_path / "logs" / "app.log").read_text()
    assert "plugin exploding raised in message_received: observer exploded" in log
    assert "plugin exploding raised in reply_ready: async observer exploded" in log


async def test_builtin_providers_can_be_overridden_by_a_later_plugin(eneca_app):
    class Override:
        @hookimpl
        def agent(self):
            return ScriptedAgent("from the override")

    client = await eneca_app(extra={"override": Override()})
    reply = await ask(gateway_of(client), "hi")
    assert reply.text == "from the override"


async def test_no_agent_plugin_means_a_clear_fallback_reply(eneca_app):
    gateway = gateway_of(await eneca_app())
    handle = await gateway.publish(Message("c", "test", "anyone?"))
    reply = await handle.reply()
    assert not reply.success
    assert reply.error.code == "no_agent"
    assert reply.text


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.touch()
    return path


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGINS", "PORT"))}
    full_env.update({"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs")})
    full_env.update(env)
    return subprocess.run(
        [ENECA, *args], capture_output=True, text=True, cwd=tmp_path, env=full_env, timeout=60
    )


def test_how_a_hook_is_called_is_read_from_its_spec():
    from core import hookspecs
    from core.plugins import call_each_sync, create_plugin_manager, is_firstresult

    pm = create_plugin_manager([])
    for name, function in vars(hookspecs).items():
        spec = getattr(function, "eneca_bot_spec", None)
        if spec is not None:
            assert is_firstresult(pm, name) == bool(spec.get("firstresult")), name
    with pytest.raises(ValueError, match="firstresult"):
        call_each_sync(pm, "agent")


async def test_a_firstresult_hook_returns_one_result_and_an_event_hook_every_one():
    from core.plugins import call_hook, create_plugin_manager

    class First:
        @hookimpl(tryfirst=True)
        def knowledge_search(self, query):
            return ["first"]

        @hookimpl
        def agent_tools(self):
            return ["tool-a"]

    class Second:
        @hookimpl
        def knowledge_search(self, query):
            return ["second"]

        @hookimpl
        def agent_tools(self):
            raise RuntimeError("broken observer")

        @hookimpl
        def health_check(self):
            return None

    pm = create_plugin_manager([], {"first": First(), "second": Second()})
    found = await call_hook(pm, "knowledge_search", gateway=None, query="q", limit=1)
    assert found == ["first"]
    # An event: every implementation, each behind its own error boundary.
    tools = await call_hook(pm, "agent_tools", gateway=None, message=None)
    assert tools == [("first", ["tool-a"])]
    assert await call_hook(pm, "health_check", gateway=None) == []
