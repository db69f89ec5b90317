"""Fixtures shared by the test folders that start real ``eneca-bot serve`` processes:
the fake model and the fake TalkMe API they talk to (registered in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.clients import echo
from tests.support.openai_server import FakeOpenAI
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
    """A fake TalkMe API on a free loopback port."""
    fake = FakeTalkMe()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
