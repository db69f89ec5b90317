"""Fixtures of the tracing tests: a test OTLP receiver, a fake OpenAI that echoes, a fake
TalkMe API, and no ``eneca-bot serve`` left running after a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.otlp_receiver import otlp_receiver  # noqa: F401
from tests.support.serve_process import ServeProcess


@pytest.fixture(autouse=True)
async def no_server_left_running() -> AsyncIterator[None]:
    yield
    while ServeProcess.spawned:
        await ServeProcess.spawned.pop().kill()
