"""``eneca-bot serve --workers N``."""

from core.cli import main as cli_main


def test_workers_above_one_on_embedded_sqlite_are_refused_with_one_line(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)  # no .env or config/settings.toml of the checkout
    monkeypatch.setenv("PLUGINS", "http_api,talkme,memory_sqlite,agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    assert cli_main(["serve", "--workers", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--workers 2 needs" in err and "postgres plugin" in err
    assert not (tmp_path / "data").exists(), "nothing was started"
