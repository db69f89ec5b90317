"""Fixtures of the deploy tests: the real ``eneca-bot serve`` as a process, a fake model and
TalkMe API on loopback, and a real nginx in front."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.nginx import Nginx
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess, base_env
from tests.support.talkme_fake_api import FakeTalkMe

Gateway = Callable[..., Awaitable[ServeProcess]]


@pytest.fixture
async def gateway(tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe) -> AsyncIterator[Gateway]:
    """``server = await gateway(KEY=value...)``: ``eneca-bot serve`` on a free port, its
    model and TalkMe API the fakes, started (``/health`` answers); stopped at the end."""
    started: list[ServeProcess] = []

    async def start(work: str = "gw", **env: Any) -> ServeProcess:
        settings = {"OPENAI_BASE_URL": llm.base_url, "TALKME_API_URL": talkme.url, **env}
        server = ServeProcess(tmp_path / work, base_env(tmp_path / work, **settings))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[Callable[[ServeProcess], Awaitable[Nginx]]]:
    """``proxy = await nginx(server)``: the shipped nginx file in front of ``server``."""
    running: list[Nginx] = []

    async def start(server: ServeProcess) -> Nginx:
        proxy = Nginx(tmp_path / f"nginx-{len(running)}", f"127.0.0.1:{server.port}")
        running.append(proxy)
        return await proxy.start()

    yield start
    for proxy in running:
        await proxy.stop()


@pytest.fixture(autouse=True)
async def no_server_left_running() -> AsyncIterator[None]:
    """A test that fails half-way must not leave an ``eneca-bot serve`` behind."""
    yield
    while ServeProcess.spawned:
        await ServeProcess.spawned.pop().kill()
