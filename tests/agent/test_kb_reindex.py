"""Reindexing safely: a wrong KNOWLEDGE_DIR never empties the index (serve, check, the CLI),
emptying it takes --allow-empty, and the admin endpoint reindexes a running gateway."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.cli import main as cli_main
from core.testing import gateway_of

ADMIN = {"X-API-Key": "admin-key"}


async def _documents(client) -> int:
    health = await (await client.get("/health", headers=ADMIN)).json()
    return health["plugins"]["agent_openai"]["knowledge_documents"]


def _app_settings(folder: Path) -> dict[str, dict[str, object]]:
    return {"agent_openai": {"knowledge_dir": str(folder)}, "core": {"admin_keys": "admin-key"}}


@pytest.mark.parametrize("problem", ["missing", "empty"])
async def test_serve_keeps_the_index_when_the_folder_is_missing_or_empty(
    eneca_app, docs, tmp_path, problem
):
    data = tmp_path / "data"
    first = await eneca_app(plugins=["agent_openai"], settings=_app_settings(docs), data_dir=data)
    assert await _documents(first) == 3
    await first.close()
    wrong = tmp_path / "kb-typo"
    if problem == "empty":
        wrong.mkdir()
    client = await eneca_app(plugins=["agent_openai"], settings=_app_settings(wrong), data_dir=data)
    assert await _documents(client) == 3
    passages = await gateway_of(client).knowledge_search("самовывоз", 1)
    assert passages[0].source == "delivery.ru.md"
    log = (tmp_path / "logs" / "app.log").read_text("utf-8")
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert str(wrong) in errors[0] and "3" in errors[0] and "kept" in errors[0]


@pytest.fixture
def cli_env(monkeypatch, tmp_path, docs):
    monkeypatch.chdir(tmp_path)  # no .env or config/settings.toml of the checkout
    monkeypatch.setenv("PLUGINS", "agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "cli-logs"))
    monkeypatch.setenv("KNOWLEDGE_DIR", str(docs))
    return monkeypatch


def test_check_fails_on_a_missing_folder_and_an_empty_one_over_an_index(
    cli_env, docs, tmp_path, capsys
):
    assert cli_main(["check"]) == 0
    assert "configuration ok" in capsys.readouterr().out
    cli_env.setenv("KNOWLEDGE_DIR", str(tmp_path / "nope"))
    assert cli_main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("eneca-bot: error: KNOWLEDGE_DIR: the knowledge folder")
    assert "nope does not exist" in err
    cli_env.setenv("KNOWLEDGE_MODE", "off")
    assert cli_main(["check"]) == 0  # no knowledge base, no folder needed
    capsys.readouterr()

    cli_env.delenv("KNOWLEDGE_MODE")
    cli_env.setenv("KNOWLEDGE_DIR", str(docs))
    assert cli_main(["kb", "reindex"]) == 0
    for path in docs.iterdir():
        path.unlink()
    capsys.readouterr()
    assert cli_main(["check"]) == 1
    assert "has no documents but the index holds 3" in capsys.readouterr().err


def test_emptying_the_index_takes_allow_empty(cli_env, docs, capsys):
    assert cli_main(["kb", "reindex"]) == 0
    shutil.rmtree(docs)
    docs.mkdir()
    capsys.readouterr()
    assert cli_main(["kb", "reindex"]) == 1
    assert "has no documents but the index has 3" in capsys.readouterr().err
    assert cli_main(["kb", "search", "самовывоз"]) == 0  # the index is intact
    capsys.readouterr()
    assert cli_main(["kb", "reindex", "--allow-empty"]) == 0
    assert "3 removed" in capsys.readouterr().out
    assert cli_main(["kb", "search", "самовывоз"]) == 1


async def test_admin_endpoint_reindexes_a_running_gateway(eneca_app, docs, tmp_path):
    client = await eneca_app(plugins=["agent_openai"], settings=_app_settings(docs))
    gateway = gateway_of(client)
    url = "/admin/knowledge/reindex"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers={"X-API-Key": "wrong"})).status == 403
    bad = await client.post(url, params={"full": "maybe"}, headers=ADMIN)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "invalid_query"

    (docs / "gifts.md").write_text("# Gift wrapping\n\nGift wrapping is free of charge.\n")
    response = await client.post(url, headers=ADMIN)
    assert response.status == 200
    body = await response.json()
    assert (body["added"], body["unchanged"], body["documents"]) == (1, 3, 4)
    assert (await gateway.knowledge_search("gift wrapping", 1))[0].source == "gifts.md"

    full = await (await client.post(url, params={"full": "true"}, headers=ADMIN)).json()
    assert (full["updated"], full["added"]) == (4, 0)

    shutil.rmtree(docs)
    refused = await client.post(url, headers=ADMIN)
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "knowledge_dir_unsafe"
    assert (await gateway.knowledge_search("gift wrapping", 1))[0].source == "gifts.md"
    docs.mkdir()
    emptied = await client.post(url, params={"allow_empty": "1"}, headers=ADMIN)
    assert (await emptied.json())["documents"] == 0
    assert await gateway.knowledge_search("gift wrapping", 1) == []


async def test_admin_endpoint_needs_a_configured_key(eneca_app, docs):
    client = await eneca_app(
        plugins=["agent_openai"], settings={"agent_openai": {"knowledge_dir": str(docs)}}
    )
    response = await client.post("/admin/knowledge/reindex")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "admin_disabled"
