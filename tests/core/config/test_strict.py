"""Strict configuration: a typo in the TOML file stops `check` and `serve` with a line that
names the file, the section and the key; a bad value names where it was set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config.settings import CoreSettings
from core.contract.errors import ConfigError
from core.web.app import load_config

ENECA = str(Path(sys.executable).with_name("eneca-bot"))
DEFAULTS = "http_api,talkme,memory_sqlite,agent_openai"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    names = {f.upper() for f in CoreSettings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names and k != "ENECA_CONFIG"}
    env.update(
        {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"), "PLUGINS": ""}
    )
    env.update(extra)
    return env


def _eneca(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENECA, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        timeout=60,
    )


@pytest.fixture
def clean_env(monkeypatch):
    names = {f.upper() for f in CoreSettings.model_fields}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)
    monkeypatch.delenv("ENECA_CONFIG", raising=False)


def test_check_rejects_the_three_typos_of_the_report_naming_each(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text(
        'prot = 9000\n[agent_openai]\nopnai_model = "gpt-4o"\n[telegramm]\ntoken = "x"\n'
    )
    result = _eneca(tmp_path, "check", "--config", str(config), PLUGINS=DEFAULTS)
    assert result.returncode == 1
    assert "configuration ok" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    prot, model, section = lines
    assert str(config) in prot and "`prot`" in prot and "did you mean `port`?" in prot
    assert "[agent_openai]" in model and "`opnai_model`" in model
    assert "did you mean `openai_model`?" in model
    assert "unknown section [telegramm]" in section and "did you mean [telegram]?" in section
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_on_an_unknown_key(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("prot = 9000\n")
    result = _eneca(tmp_path, "serve", "--config", str(config))
    assert result.returncode == 1
    assert "unknown key `prot`" in result.stderr and "did you mean `port`?" in result.stderr


def test_an_unknown_key_with_nothing_close_gets_no_guess(tmp_path, clean_env):
    config = tmp_path / "s.toml"
    config.write_text("[core]\nzzzz = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env_file=None, overrides={"core": {"plugins": []}})
    assert str(caught.value) == f"{config}: unknown key `zzzz` in section [core]"


def test_a_disabled_plugins_section_is_accepted_with_a_note(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("[talkme]\ntest_mode = true\n")
    result = _eneca(tmp_path, "check", "--config", str(config), PLUGINS="memory_sqlite")
    assert result.returncode == 0, result.stderr
    assert "section [talkme]" in result.stdout and "not enabled" in result.stdout
    assert "configuration ok" in result.stdout


def test_config_host_and_port_are_accepted_after_the_command_too(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("port = 8123\n")
    before = _eneca(tmp_path, "--config", str(config), "check")
    after = _eneca(tmp_path, "check", "--config", str(config), "--port", "8124")
    equals = _eneca(tmp_path, "check", f"--config={config}", "--host", "127.0.0.1")
    for result in (before, after, equals):
        assert result.returncode == 0, result.stderr
        assert "configuration ok" in result.stdout


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path, clean_env):
    config = tmp_path / "s.toml"
    config.write_text('port = "eighty"\n[talkme]\nmax_message_chars = 3\n')
    with pytest.raises(ConfigError, match=rf"^{config} top level port: .*valid integer"):
        load_config(config, env_file=None, overrides={"core": {"plugins": []}})
    config.write_text("[talkme]\nmax_message_chars = 3\n")
    with pytest.raises(ConfigError, match=rf"talkme.*{config} \[talkme\] max_message_chars: "):
        load_config(config, env_file=None, overrides={"core": {"plugins": ["talkme"]}})


def test_a_bad_value_names_the_env_file_the_environment_or_the_flag(
    tmp_path, clean_env, monkeypatch
):
    config = tmp_path / "s.toml"
    config.write_text("port = 8000\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=eighty\n")
    with pytest.raises(ConfigError, match=rf"^PORT \(in {dotenv}\): .*'eighty'"):
        load_config(config, env_file=dotenv)
    monkeypatch.setenv("PORT", "ninety")
    with pytest.raises(ConfigError, match=r"^PORT \(environment variable\): .*'ninety'"):
        load_config(config, env_file=dotenv)
    result = _eneca(tmp_path, "check", "--config", str(config), "--port", "seventy")
    assert result.returncode == 1
    assert "--port (flag):" in result.stderr and "'seventy'" in result.stderr
