"""Fixtures of the security and observability tests: the fake TalkMe API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.talkme_fake_api import FakeTalkMe


@pytest.fixture
async def fake_talkme() -> AsyncIterator[FakeTalkMe]:
    fake = FakeTalkMe()
    await fake.start()
    yield fake
    await fake.stop()
