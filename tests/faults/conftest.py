"""Fixtures of the fault tests: a fake OpenAI that echoes, a fake TalkMe API, a work folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.serve_process import ServeProcess


@pytest.fixture(autouse=True)
async def no_server_left_running() -> AsyncIterator[None]:
    """A test that fails half-way must not leave an ``eneca-bot serve`` behind."""
    yield
    while ServeProcess.spawned:
        await ServeProcess.spawned.pop().kill()
