"""Docs that must stay true: the README's configuration table is what the code reads."""

import re
from pathlib import Path

import pytest

from core.config.reference import markdown
from core.config.settings import DEFAULT_PLUGINS
from core.contract.errors import ConfigError
from core.web.app import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_matches_the_settings_classes(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.touch()
    config = load_config(
        empty, env_file=None, overrides={"core": {"plugins": list(DEFAULT_PLUGINS)}}
    )
    expected = markdown(config.plugin_settings)
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- config:start -->\n(.*)<!-- config:end -->", readme, re.S)
    assert block, "README lost its config markers"
    assert block.group(1) == expected, (
        "README's configuration table is stale: run scripts/sync_readme_config.py"
    )


def test_readme_lists_the_settings_of_the_opt_in_plugins_too():
    from plugins.postgres.settings import PostgresSettings
    from plugins.ratelimit_redis.settings import RedisSettings

    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- optional-config:start -->\n(.*)<!-- optional-config:end -->", readme, re.S
    )
    assert block, "README lost its optional-config markers"
    assert block.group(1) == markdown([PostgresSettings, RedisSettings]), (
        "README's table of the opt-in plugins is stale: run scripts/sync_readme_config.py"
    )


def test_the_readme_quick_start_has_exactly_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in quick.splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == [
        "python3 dev.py serve",
        "python3 dev.py test",
    ]


def test_the_example_config_file_is_valid_and_insists_on_a_webhook_secret(monkeypatch):
    example = ROOT / "config" / "settings.example.toml"
    monkeypatch.delenv("TALKME_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="TALKME_WEBHOOK_SECRET is not set"):
        load_config(example, env_file=None)
    monkeypatch.setenv("TALKME_WEBHOOK_SECRET", "a-long-random-string")
    config = load_config(example, env_file=None)
    assert config.core.port == 8000
    assert sorted(config.core.plugins) == sorted(DEFAULT_PLUGINS)
    assert config.warnings == ()  # no open door left in the production example


def test_every_setting_of_the_core_and_of_every_installed_plugin_has_a_description(tmp_path):
    from core.config.reference import keys
    from core.plugins import discover

    empty = tmp_path / "empty.toml"
    empty.touch()
    installed = sorted(discover())
    overrides = {
        "core": {"plugins": installed},
        "telegram": {"bot_token": "1:T"},
        "redis": {"url": "redis://127.0.0.1:6379/0"},  # required, like the bot token
    }
    config = load_config(empty, env_file=None, overrides=overrides)
    assert len(config.plugin_settings) > len(DEFAULT_PLUGINS)  # the core and each plugin
    undocumented = [
        f"{key.env} ([{key.section}] {key.name})"
        for key in keys(config.plugin_settings)
        if not key.doc.strip()
    ]
    assert undocumented == [], f"settings without a `#:` description: {undocumented}"
