"""``eneca-bot telegram set-webhook``: a command the plugin adds through register_commands."""

import pytest

from core.cli import main
from core.testing import sent_json


@pytest.fixture
def cli_env(tg, tmp_path, monkeypatch):
    """The environment ``eneca-bot`` reads, with only the Telegram plugin enabled."""
    monkeypatch.chdir(tmp_path)
    for key, value in {
        "PLUGINS": "telegram",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_WEBHOOK_SECRET": tg.secret,
        "TELEGRAM_API_URL": tg.api,
    }.items():
        monkeypatch.setenv(key, value)
    return tg


def test_set_webhook_registers_the_url_and_the_secret(cli_env, capsys):
    tg = cli_env
    tg.http.post(tg.set_webhook_url, payload={"ok": True, "result": True})
    url = "https://bot.example.com/webhook/telegram"
    assert main(["telegram", "set-webhook", "--url", url]) == 0

    (body,) = sent_json(tg.http, tg.set_webhook_url)
    assert body == {
        "url": url,
        "secret_token": tg.secret,
        "allowed_updates": ["message"],
        "drop_pending_updates": False,
    }
    assert f"webhook set to {url}" in capsys.readouterr().out


def test_set_webhook_refuses_a_plain_http_url(cli_env, capsys):
    assert main(["telegram", "set-webhook", "--url", "http://bot.example.com/x"]) == 2
    assert "https://" in capsys.readouterr().err
    assert not cli_env.http.requests


def test_set_webhook_reports_telegrams_refusal_without_the_token(cli_env, capsys):
    tg = cli_env
    tg.http.post(
        tg.set_webhook_url,
        status=401,
        payload={"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert main(["telegram", "set-webhook", "--url", "https://bot.example.com/w"]) == 1
    captured = capsys.readouterr()
    assert "Unauthorized" in captured.err
    assert tg.token not in captured.err + captured.out


def test_the_command_exists_only_when_the_plugin_is_enabled(cli_env, monkeypatch, capsys):
    monkeypatch.setenv("PLUGINS", "")
    with pytest.raises(SystemExit) as exit_info:
        main(["telegram", "set-webhook", "--url", "https://bot.example.com/w"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
