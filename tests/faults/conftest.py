"""Fixtures of the fault tests: a fake OpenAI that echoes, a fake TalkMe API, a work folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.clients import echo
from tests.support.openai_server import FakeOpenAI
from tests.support.serve_process import ServeProcess
from tests.support.talkme_fake_api import FakeTalkMe


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI answering ``re: <the user's last message>``."""
    fake = FakeOpenAI(default=echo())
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def talkme() -> AsyncIterator[FakeTalkMe]:
    fake = FakeTalkMe()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture(autouse=True)
async def no_server_left_running() -> AsyncIterator[None]:
    """A test that fails half-way must not leave an ``eneca-bot serve`` behind."""
    yield
    while ServeProcess.spawned:
        await ServeProcess.spawned.pop().kill()
