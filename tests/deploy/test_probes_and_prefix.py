"""``/livez``, ``/readyz`` and the public path prefix (``ROOT_PATH``, ``X-Forwarded-Prefix``),
on the real gateway in-process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from core import Check, hookimpl
from core.testing import ScriptedAgent


class Failing:
    """A plugin whose health check fails."""

    @hookimpl
    def health_check(self, gateway: Any) -> Check:
        return Check("queue", False, {"error": "broker unreachable"})


async def test_livez_and_readyz_answer_when_all_is_well(eneca_app) -> None:
    client = await eneca_app(["http_api", "memory_sqlite"], agent=ScriptedAgent())
    live = await client.get("/livez")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert body["checks"]["memory_sqlite"]["ok"] is True


async def test_readyz_names_the_failing_plugin_and_livez_stays_up(eneca_app) -> None:
    client = await eneca_app(["http_api"], agent=ScriptedAgent(), extra={"broker": Failing()})
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503
    assert body["failing"] == ["broker.queue"]
    assert body["error"]["code"] == "not_ready"
    assert "broker.queue" in body["error"]["message"]
    assert (await client.get("/livez")).status == 200
    health = await client.get("/health")  # unchanged: the report for people
    assert (await health.json())["status"] == "degraded"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
async def test_readyz_fails_when_the_data_dir_takes_no_writes(eneca_app, tmp_path: Path) -> None:
    client = await eneca_app(["http_api"], agent=ScriptedAgent(), data_dir=tmp_path / "data")
    (tmp_path / "data").chmod(0o500)
    try:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["failing"] == ["data_dir"]
    finally:
        (tmp_path / "data").chmod(0o700)


async def test_probes_are_in_the_openapi_document(eneca_app) -> None:
    client = await eneca_app(["http_api"], agent=ScriptedAgent())
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    assert set(paths["/livez"]["get"]["responses"]) >= {"200"}
    assert set(paths["/readyz"]["get"]["responses"]) >= {"200", "503"}
    assert "security" not in paths["/readyz"]["get"]


async def links(client: Any, **headers: str) -> tuple[set[str], list[dict[str, str]], str]:
    index = await (await client.get("/", headers=headers)).json()
    servers = (await (await client.get("/openapi.json", headers=headers)).json())["servers"]
    page = await (await client.get("/examples/chat", headers=headers)).text()
    return {link["path"] for link in index["endpoints"]}, servers, page


EXAMPLES = {"http_api": {"serve_examples": True}}


async def test_root_path_prefixes_links_openapi_servers_and_the_example_page(eneca_app) -> None:
    client = await eneca_app(
        ["http_api"],
        agent=ScriptedAgent(),
        settings={"core": {"root_path": "ai-webhook/"}, **EXAMPLES},
    )
    paths, servers, page = await links(client)
    assert "/ai-webhook/api/chat" in paths and "/api/chat" not in paths
    assert servers == [{"url": "/ai-webhook"}]
    assert '<meta name="eneca-base-path" content="/ai-webhook">' in page


async def test_x_forwarded_prefix_counts_only_from_a_trusted_proxy(eneca_app) -> None:
    untrusted = await eneca_app(["http_api"], agent=ScriptedAgent(), settings=EXAMPLES)
    paths, servers, page = await links(untrusted, **{"X-Forwarded-Prefix": "/evil"})
    assert "/api/chat" in paths and servers == [{"url": "/"}]
    assert '<meta name="eneca-base-path" content="">' in page

    trusted = await eneca_app(
        ["http_api"],
        agent=ScriptedAgent(),
        settings={"core": {"trusted_proxies": "127.0.0.1"}, **EXAMPLES},
    )
    paths, servers, page = await links(trusted, **{"X-Forwarded-Prefix": "/ai-webhook"})
    assert "/ai-webhook/health" in paths and servers == [{"url": "/ai-webhook"}]
    assert 'content="/ai-webhook"' in page
    # Not a plain path: ignored rather than written into links and the page.
    paths, _, page = await links(trusted, **{"X-Forwarded-Prefix": '/x"><script>'})
    assert "/health" in paths and '<meta name="eneca-base-path" content="">' in page


def test_a_root_path_that_is_not_a_path_stops_start_up(tmp_path: Path) -> None:
    from core.contract.errors import ConfigError
    from core.web.app import load_config

    empty = tmp_path / "empty.toml"
    empty.touch()
    with pytest.raises(ConfigError, match="ROOT_PATH"):
        load_config(empty, env_file=None, overrides={"core": {"root_path": "/a b"}})
