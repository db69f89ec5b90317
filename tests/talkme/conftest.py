"""Fixtures of the TalkMe tests: the fake TalkMe API and an app with the plugin enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.testing import ScriptedAgent
from tests.support.talkme_fake_api import FakeTalkMe
from tests.support.talkme_helpers import ADMIN_KEY


@pytest.fixture
async def fake_talkme() -> AsyncIterator[FakeTalkMe]:
    fake = FakeTalkMe()
    await fake.start()
    yield fake
    await fake.stop()


TalkMeApp = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def talkme_app(eneca_app: Any, fake_talkme: FakeTalkMe) -> TalkMeApp:
    """``client = await talkme_app(agent=..., talkme={...}, core={...})``: the real gateway
    with the TalkMe plugin, pointed at the fake API, with fast retries and an admin key."""

    async def make(
        agent: Any = None,
        *,
        talkme: dict[str, Any] | None = None,
        core: dict[str, Any] | None = None,
    ) -> TestClient:
        core_settings = {
            "admin_keys": [ADMIN_KEY],
            "delivery_max_attempts": 5,
            "delivery_base_delay_s": 0.02,
            "delivery_max_delay_s": 0.2,
            **(core or {}),
        }
        talkme_settings = {"api_url": fake_talkme.url, "typing_wait_s": 1.0, **(talkme or {})}
        return await eneca_app(
            ["talkme"],
            agent=agent if agent is not None else ScriptedAgent(),
            settings={"core": core_settings, "talkme": talkme_settings},
        )

    return make
