"""Configuration layers and the messages a bad value gets."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.config.settings import CoreSettings, build_settings
from core.contract.errors import ConfigError
from core.web.app import load_config

ENECA = str(Path(sys.executable).with_name("eneca-bot"))


@pytest.fixture
def clean_env(monkeypatch):
    names = {f.upper() for f in CoreSettings.model_fields}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)
    monkeypatch.delenv("ENECA_CONFIG", raising=False)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_each_layer_overrides_the_one_below(tmp_path, monkeypatch, clean_env):
    toml = _write(
        tmp_path / "settings.toml",
        'port = 8101\nhost = "0.0.0.0"\nlog_level = "debug"\n'
        "plugins = []\n[core]\nshutdown_grace_s = 3\n",
    )
    dotenv = _write(tmp_path / ".env", "PORT=8102\nLOG_LEVEL=warning\n")
    # defaults < toml
    core = load_config(toml, env_file=None).core
    assert (core.port, core.host, core.log_level, core.shutdown_grace_s) == (
        8101,
        "0.0.0.0",
        "DEBUG",
        3,
    )
    assert core.data_dir == Path("data").absolute()  # the default, made absolute
    # toml < .env
    core = load_config(toml, env_file=dotenv).core
    assert (core.port, core.log_level, core.host) == (8102, "WARNING", "0.0.0.0")
    # .env < environment
    monkeypatch.setenv("PORT", "8103")
    core = load_config(toml, env_file=dotenv).core
    assert (core.port, core.log_level) == (8103, "WARNING")
    # environment < CLI flags
    core = load_config(toml, env_file=dotenv, overrides={"core": {"port": 8104}}).core
    assert core.port == 8104


def test_seed_environment_names_work(tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("PLUGINS", "memory_sqlite, agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "l"))
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("API_KEYS", "k1, k2")
    core = build_settings(CoreSettings, {}, None)
    assert core.plugins == ["memory_sqlite", "agent_openai"]
    assert core.data_dir == tmp_path / "d" and core.log_dir == tmp_path / "l"
    assert core.host == "0.0.0.0" and core.port == 8000
    assert core.api_key_values() == ["k1", "k2"]
    assert "k1" not in repr(core)


def test_an_invalid_value_names_the_key(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(
        ConfigError, match=r"^PORT \(environment variable\): .*valid integer.*'eighty'"
    ):
        load_config(_write(tmp_path / "s.toml", ""), env_file=None)


def test_a_named_config_file_must_exist(tmp_path, clean_env):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env_file=None)


def test_a_broken_toml_file_is_named(tmp_path, clean_env):
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(_write(tmp_path / "bad.toml", "port = = 1"), env_file=None)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {f.upper() for f in CoreSettings.model_fields}
    }
    env.update(
        {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"), "PLUGINS": ""}
    )
    env.update(extra)
    return env


def test_check_prints_one_line_for_an_invalid_value(tmp_path):
    result = subprocess.run(
        [ENECA, "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path, PORT="eighty", LOG_LEVEL="loud"),
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "PORT" in result.stderr and "LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_passes_on_a_valid_configuration(tmp_path):
    result = subprocess.run(
        [ENECA, "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_uses_cli_flags_over_env_and_exits_0_on_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [ENECA, "serve", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path,
        env=_env(tmp_path, PORT=str(_free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        proc.stderr.read()
                        if proc.poll() is not None
                        else "server did not become healthy"
                    ) from None
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "logs" / "app.log").read_text()
    assert "GET /health 200" in log
