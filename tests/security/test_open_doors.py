"""Open doors are named: a TalkMe webhook without a secret, an HTTP API reachable from the
network without a key. `check` reports them, start-up warns once, and a setting refuses
to start for those who want it enforced."""

import os
import subprocess
import sys
from pathlib import Path

from core.config.settings import CoreSettings
from core.testing import ScriptedAgent
from core.web.settings import WebAccessSettings

ENECA = str(Path(sys.executable).with_name("eneca-bot"))
NAMES = {f.upper() for f in (*CoreSettings.model_fields, *WebAccessSettings.model_fields)}


def _check(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in NAMES and not k.startswith("TALKME_") and k != "ENECA_CONFIG"
    }
    env.update({"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs")})
    env.update(extra)
    return subprocess.run(
        [ENECA, "check"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )


def test_check_reports_a_talkme_webhook_without_a_secret(tmp_path):
    result = _check(tmp_path, PLUGINS="talkme")
    assert result.returncode == 0, result.stderr
    assert "warning: TALKME_WEBHOOK_SECRET is not set" in result.stdout
    quiet = _check(tmp_path, PLUGINS="talkme", TALKME_WEBHOOK_SECRET="s3cret-path-part")
    assert quiet.returncode == 0 and "warning" not in quiet.stdout


def test_talkme_require_secret_refuses_to_start_without_one(tmp_path):
    result = _check(tmp_path, PLUGINS="talkme", TALKME_REQUIRE_SECRET="true")
    assert result.returncode == 1
    assert "TALKME_REQUIRE_SECRET" in result.stderr and "TALKME_WEBHOOK_SECRET" in result.stderr
    ok = _check(
        tmp_path, PLUGINS="talkme", TALKME_REQUIRE_SECRET="true", TALKME_WEBHOOK_SECRET="s3cret"
    )
    assert ok.returncode == 0, ok.stderr


def test_check_reports_an_http_api_open_to_the_network(tmp_path):
    result = _check(tmp_path, PLUGINS="http_api", HOST="0.0.0.0")
    assert result.returncode == 0, result.stderr
    assert "warning: no key is set (API_KEYS" in result.stdout and "0.0.0.0" in result.stdout
    public = {"PUBLIC_KEYS": "pk-1", "PUBLIC_ORIGINS": "https://shop.example.com"}
    for quiet in (
        _check(tmp_path, PLUGINS="http_api", HOST="127.0.0.1"),
        _check(tmp_path, PLUGINS="http_api", HOST="0.0.0.0", API_KEYS="k1"),
        _check(tmp_path, PLUGINS="http_api", HOST="0.0.0.0", **public),  # any kind closes it
    ):
        assert quiet.returncode == 0 and "warning" not in quiet.stdout


def test_require_api_key_refuses_an_open_api_off_loopback(tmp_path):
    result = _check(tmp_path, PLUGINS="http_api", HOST="0.0.0.0", REQUIRE_API_KEY="true")
    assert result.returncode == 1
    assert "REQUIRE_API_KEY" in result.stderr and "API_KEYS" in result.stderr
    on_loopback = _check(tmp_path, PLUGINS="http_api", HOST="::1", REQUIRE_API_KEY="true")
    assert on_loopback.returncode == 0, on_loopback.stderr


async def test_start_up_warns_once_about_the_open_webhook(eneca_app, tmp_path):
    await eneca_app(plugins=["talkme"], agent=ScriptedAgent("ok"))
    log = (tmp_path / "logs" / "app.log").read_text()
    assert log.count("TALKME_WEBHOOK_SECRET is not set") == 1
